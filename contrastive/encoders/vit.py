"""Vision Transformer encoders f (Dosovitskiy et al. 2021, "An Image is Worth
16x16 Words"): `vit`, and the presets `vit_small16` (ViT-S/16) and
`vit_base16` (ViT-B/16).

The network follows the paper and its reference code (`google-research/
vision_transformer`, as in timm's `VisionTransformer`):

* Patch embedding: a `patch_size` x `patch_size` convolution of stride
  `patch_size` to `width` channels; the image sides must be multiples of
  `patch_size`.
* A learned class token in front of the patches (initialised at zero) and
  learned position embeddings for every token (truncated normal, standard
  deviation 0.02) for the grid of the image shape the layer is built with.
* `depth` pre-norm blocks: `x + MHSA(LN(x))`, then `x + MLP(LN(x))`, the MLP
  `Dense(mlp_dim)`, exact GELU, `Dense(width)`; layer norm epsilon 1e-6;
  dropout after the position embeddings, after the attention and in the
  MLP (none on the attention weights).
* A final layer norm; h is the class token's output (width `width`).

Without a classifier, ViT-S/16 has 21,665,664 parameters at 224x224 and
ViT-B/16 85,798,656; a 1000-class head brings them to the usual 22.05M and
86.57M.
"""

from typing import Annotated

import keras
from keras import ops

from contrastive.registry import register
from contrastive.typecheck import Range, TypeMismatch, Width, check_value

LAYER_NORM_EPSILON = 1e-6
POSITION_STDDEV = 0.02

PatchSize = Annotated[int, Range(1, 128)]
Depth = Annotated[int, Range(1, 128)]
Heads = Annotated[int, Range(1, 128)]
MlpDim = Annotated[int, Range(1, 65536)]
Dropout = Annotated[float, Range(0, 1, max_inclusive=False)]

# preset name -> (patch_size, width, depth, heads, mlp_dim)
PRESETS = {
    "vit_small16": (16, 384, 12, 6, 1536),
    "vit_base16": (16, 768, 12, 12, 3072),
}
ARCHITECTURE = ("patch_size", "width", "depth", "heads", "mlp_dim")


def gelu(x):
    """The exact GELU, x * Phi(x)."""
    # Written with erf: TensorFlow's own exact GELU uses erfc, which tf2onnx
    # cannot convert to ONNX.
    return 0.5 * x * (1.0 + ops.erf(x * 0.7071067811865476))


def _checked(name, value, annotation):
    try:
        return check_value(value, annotation)
    except TypeMismatch as exc:
        raise ValueError(f"{name}: {exc}") from None


class _Block(keras.layers.Layer):
    """A pre-norm transformer block: x + MHSA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, width, heads, mlp_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.heads = heads
        self.mlp_dim = mlp_dim
        self.dropout = dropout
        policy = self.dtype_policy
        self.norm1 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=policy)
        self.attention = keras.layers.MultiHeadAttention(
            heads, width // heads, dtype=policy, name="attention")
        self.norm2 = keras.layers.LayerNormalization(epsilon=LAYER_NORM_EPSILON, dtype=policy)
        self.hidden = keras.layers.Dense(mlp_dim, dtype=policy, name="mlp_hidden")
        self.out = keras.layers.Dense(width, dtype=policy, name="mlp_out")
        self.drop = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape):
        self.norm1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm2.build(input_shape)
        self.hidden.build(input_shape)
        self.out.build((*input_shape[:-1], self.mlp_dim))

    def call(self, x, training=False):
        y = self.norm1(x)
        y = self.attention(y, y, training=training)
        x = x + self.drop(y, training=training)
        y = gelu(self.hidden(self.norm2(x)))
        y = self.out(self.drop(y, training=training))
        return x + self.drop(y, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, heads=self.heads, mlp_dim=self.mlp_dim,
                      dropout=self.dropout)
        return config


@register("encoders", "vit")
class VisionTransformer(keras.layers.Layer):
    """Vision Transformer returning the class token's output as h.

    The defaults are ViT-S/16; see the module docstring for the exact
    architecture. The position embeddings are learned for the grid of the
    image shape the layer is first built with; other image shapes are
    refused. On 32x32 images (CIFAR), a `patch_size` of 4 gives 64 patches
    where 16 gives 4.

    Example:

    ```python
    encoder = contrastive.build("encoders", {
        "name": "vit", "patch_size": 4, "width": 192, "depth": 6, "heads": 3,
        "mlp_dim": 768})
    h = encoder(images)              # (B, 192) for 32x32 images in [0, 1]
    ```

    Args:
        patch_size: side of the square patches (and of the embedding
            convolution's kernel and stride).
        width: the token width D (a multiple of `heads`).
        depth: the number of transformer blocks.
        heads: attention heads per block.
        mlp_dim: the hidden width of each block's MLP.
        dropout: dropout rate after the position embeddings, the attention
            and in the MLP; 0 in the paper's pretraining of ViT-S/B.

    Call arguments:
        images: float images NHWC.
        training: dropout is active.

    Returns:
        h of shape `(B, width)`.
    """

    def __init__(
        self,
        patch_size: PatchSize = 16,
        width: Width = 384,
        depth: Depth = 12,
        heads: Heads = 6,
        mlp_dim: MlpDim = 1536,
        dropout: Dropout = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.patch_size = _checked("patch_size", patch_size, PatchSize)
        self.width = _checked("width", width, Width)
        self.depth = _checked("depth", depth, Depth)
        self.heads = _checked("heads", heads, Heads)
        self.mlp_dim = _checked("mlp_dim", mlp_dim, MlpDim)
        self.dropout = _checked("dropout", dropout, Dropout)
        if width % heads:
            raise ValueError(
                f"heads: expected a divisor of width {width}, received {heads}")
        policy = self.dtype_policy
        self.embed = keras.layers.Conv2D(
            width, patch_size, strides=patch_size, padding="valid", dtype=policy,
            name="patch_embedding")
        self.drop = keras.layers.Dropout(dropout, dtype=policy)
        self.blocks = [
            _Block(width, heads, mlp_dim, dropout, dtype=policy, name=f"block{i + 1}")
            for i in range(depth)
        ]
        self.norm = keras.layers.LayerNormalization(
            epsilon=LAYER_NORM_EPSILON, dtype=policy, name="norm")
        self.grid = None

    def _grid(self, input_shape):
        sides = tuple(input_shape[1:3])
        if None in sides or any(s % self.patch_size for s in sides):
            raise ValueError(
                f"images: expected height and width that are multiples of patch_size "
                f"{self.patch_size}, received {sides[0]}x{sides[1]}")
        return sides[0] // self.patch_size, sides[1] // self.patch_size

    def build(self, input_shape):
        self.grid = self._grid(input_shape)
        tokens = self.grid[0] * self.grid[1] + 1
        self.embed.build(input_shape)
        self.class_token = self.add_weight(
            shape=(1, 1, self.width), initializer="zeros", name="class_token")
        self.position_embedding = self.add_weight(
            shape=(1, tokens, self.width),
            initializer=keras.initializers.TruncatedNormal(stddev=POSITION_STDDEV),
            name="position_embedding")
        shape = (input_shape[0], tokens, self.width)
        for block in self.blocks:
            block.build(shape)
        self.norm.build(shape)

    def call(self, images, training=False):
        grid = self._grid(images.shape)
        if grid != self.grid:
            raise ValueError(
                f"images: expected the {self.grid[0] * self.patch_size}x"
                f"{self.grid[1] * self.patch_size} images this ViT was built for, received "
                f"{images.shape[1]}x{images.shape[2]}")
        x = self.embed(images)
        x = ops.reshape(x, (-1, grid[0] * grid[1], self.width))
        cls = ops.zeros_like(x[:, :1]) + self.class_token
        x = ops.concatenate([cls, x], axis=1) + self.position_embedding
        x = self.drop(x, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.norm(x)[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.width)

    def get_config(self):
        config = super().get_config()
        config.update(patch_size=self.patch_size, width=self.width, depth=self.depth,
                      heads=self.heads, mlp_dim=self.mlp_dim, dropout=self.dropout)
        return config


class _Preset(VisionTransformer):
    """A ViT of fixed architecture (`PRESETS[preset]`); only dropout is free."""

    preset = None

    def __init__(self, dropout: Dropout = 0.0, **kwargs):
        architecture = dict(zip(ARCHITECTURE, PRESETS[self.preset]))
        super().__init__(**architecture, dropout=dropout, **kwargs)

    def get_config(self):
        config = super().get_config()
        for key in ARCHITECTURE:
            config.pop(key)
        return config


@register("encoders", "vit_small16")
class ViTSmall16(_Preset):
    """ViT-S/16: patches 16x16, width 384, 12 blocks of 6 heads, MLP 1536;
    h of width 384. 21.7M parameters at 224x224.

    See `VisionTransformer` (`vit`) for the architecture and `dropout`.
    """

    preset = "vit_small16"


@register("encoders", "vit_base16")
class ViTBase16(_Preset):
    """ViT-B/16: patches 16x16, width 768, 12 blocks of 12 heads, MLP 3072;
    h of width 768. 85.8M parameters at 224x224.

    See `VisionTransformer` (`vit`) for the architecture and `dropout`.
    """

    preset = "vit_base16"
