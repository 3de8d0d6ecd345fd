"""ResNet encoders f of SimCLR: ResNet-18 to ResNet-152, width x1, x2, x4.

The network follows the official SimCLR code (`google-research/simclr`,
`resnet.py`), which is the ResNet of the TensorFlow official models:

* ResNet v1 (post-activation: convolution, batch norm, ReLU), with the stride
  of a bottleneck block in its 3x3 convolution, not in the first 1x1
  convolution. This is the variant often called "ResNet v1.5"; it is the
  ResNet-50 of the paper (Table 6: 24M parameters at width x1) and of the TF
  official models. It has the same parameters as the original v1 (only
  where the stride sits differs) and is slightly more accurate on ImageNet.
* Every layer's width, the stem included, is multiplied by
  `width_multiplier` (the paper's ResNet-50 (2x) and (4x)).
* Strided convolutions pad explicitly, `(k - 1) // 2` before and the rest
  after, then convolve with no padding (the official `conv2d_fixed_padding`);
  stride-1 convolutions use "same" padding.
* The first block of every stage has a projection shortcut (1x1
  convolution and batch norm), also in the first stage of ResNet-18/34,
  as in the official code.
* Batch norm: momentum 0.9 (the official `BATCH_NORM_DECAY`), epsilon 1e-5.
* Convolution kernels: `VarianceScaling()` with Keras' defaults (scale 1,
  fan-in, truncated normal), the official code's
  `tf.keras.initializers.VarianceScaling()`.
* The last batch norm of every residual branch starts with scale 0 when
  `zero_init_residual` is on (the official `init_zero=True`), so every block
  starts as the identity.
* The CIFAR stem of the paper's Appendix B.9 replaces the 7x7 stride-2
  convolution and the max-pool by one 3x3 stride-1 convolution.

The output is the pooled representation h (global average pooling), of width
`512 * width_multiplier` (ResNet-18/34) or `2048 * width_multiplier`
(ResNet-50/101/152).
"""

from typing import Annotated, Literal

import keras

from contrastive import torch_speed
from contrastive.registry import register
from contrastive.typecheck import Range

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5
CIFAR_STEM_MAX_SIDE = 32

# depth -> (block kind, blocks per stage)
ARCHITECTURES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_STRIDES = (1, 2, 2, 2)


def _kernel_initializer():
    return keras.initializers.VarianceScaling()


def _batch_norm(dtype, zero_gamma=False, name=None, data_format="channels_last"):
    return torch_speed.BatchNormalization(
        axis=1 if data_format == "channels_first" else -1,
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        gamma_initializer="zeros" if zero_gamma else "ones",
        dtype=dtype,
        name=name,
    )


class _ConvBN(keras.layers.Layer):
    """Convolution with the official fixed padding, batch norm, optional ReLU.

    `data_format` is the layout of the tensors between the encoder's layers
    (see `torch_speed.internal_data_format`); the variables are the same in
    either.
    """

    def __init__(self, filters, kernel_size, strides=1, relu=True, zero_gamma=False,
                 data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.relu = relu
        self.zero_gamma = zero_gamma
        policy = self.dtype_policy
        self.pad = None
        if strides > 1 and kernel_size > 1:
            total = kernel_size - 1
            begin = total // 2
            self.pad = keras.layers.ZeroPadding2D(
                ((begin, total - begin), (begin, total - begin)),
                data_format=data_format, dtype=policy,
            )
        self.conv = torch_speed.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same" if strides == 1 else "valid",
            use_bias=False,
            kernel_initializer=_kernel_initializer(),
            data_format=data_format,
            dtype=policy,
        )
        self.norm = _batch_norm(policy, zero_gamma, data_format=data_format)

    def build(self, input_shape):
        shape = input_shape
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.conv.build(shape)
        shape = self.conv.compute_output_shape(shape)
        self.norm.build(shape)

    def call(self, x, training=False):
        call = torch_speed.call_layer
        if self.pad is not None:
            x = call(self.pad, x)
        x = call(self.norm, call(self.conv, x), training=training)
        return keras.activations.relu(x) if self.relu else x

    def compute_output_shape(self, input_shape):
        shape = input_shape
        if self.pad is not None:
            shape = self.pad.compute_output_shape(shape)
        return self.conv.compute_output_shape(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            relu=self.relu,
            zero_gamma=self.zero_gamma,
            data_format=self.data_format,
        )
        return config


class _Block(keras.layers.Layer):
    """A residual block: relu(branch(x) + shortcut(x)).

    `kind` "basic": 3x3 (stride), 3x3; output `filters` channels.
    `kind` "bottleneck": 1x1, 3x3 (stride), 1x1 to `4 * filters` channels.
    """

    def __init__(
        self, kind, filters, strides=1, projection=False, zero_init_residual=True,
        data_format="channels_last", **kwargs
    ):
        super().__init__(**kwargs)
        self.data_format = data_format
        self.kind = kind
        self.filters = filters
        self.strides = strides
        self.projection = projection
        self.zero_init_residual = zero_init_residual
        policy = self.dtype_policy
        zero = zero_init_residual
        fmt = data_format
        if kind == "basic":
            out = filters
            self.branch = [
                _ConvBN(filters, 3, strides, data_format=fmt, dtype=policy),
                _ConvBN(out, 3, 1, relu=False, zero_gamma=zero, data_format=fmt, dtype=policy),
            ]
        else:
            out = 4 * filters
            self.branch = [
                _ConvBN(filters, 1, 1, data_format=fmt, dtype=policy),
                _ConvBN(filters, 3, strides, data_format=fmt, dtype=policy),
                _ConvBN(out, 1, 1, relu=False, zero_gamma=zero, data_format=fmt, dtype=policy),
            ]
        self.out_channels = out
        self.shortcut = (
            _ConvBN(out, 1, strides, relu=False, data_format=fmt, dtype=policy)
            if projection else None
        )

    def build(self, input_shape):
        shape = input_shape
        for layer in self.branch:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        if self.shortcut is not None:
            self.shortcut.build(input_shape)

    def call(self, x, training=False):
        call = torch_speed.call_layer
        shortcut = x if self.shortcut is None else call(self.shortcut, x, training=training)
        for layer in self.branch:
            x = call(layer, x, training=training)
        return keras.activations.relu(x + shortcut)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self.branch:
            shape = layer.compute_output_shape(shape)
        return shape

    def get_config(self):
        config = super().get_config()
        config.update(
            kind=self.kind,
            filters=self.filters,
            strides=self.strides,
            projection=self.projection,
            zero_init_residual=self.zero_init_residual,
            data_format=self.data_format,
        )
        return config


class ResNet(keras.layers.Layer):
    """ResNet v1 (stride in the bottleneck's 3x3 convolution) returning h.

    The depth is fixed by the registered subclass (`resnet18`, `resnet34`,
    `resnet50`, `resnet101`, `resnet152`); see the module docstring for the
    exact variant and how it follows the official SimCLR code.

    Args:
        width_multiplier: multiplies every layer's width (the paper's 1x,
            2x, 4x).
        cifar_stem: a 3x3 stride-1 first convolution and no max-pool (the
            paper's Appendix B.9) instead of the 7x7 stride-2 convolution and
            3x3 stride-2 max-pool; null chooses it when the image side is 32
            or less, at build time (the saved config records the choice).
        zero_init_residual: start the last batch-norm scale of every
            residual branch at 0 (the official code does).
        base_width: channels of the first stage before the width multiplier;
            64 in the paper. Smaller values make cheap networks for tests.

    Call arguments:
        images: float images NHWC.
        training: batch norm uses batch statistics and updates its averages.

    Returns:
        h of shape `(B, 512 * width_multiplier * base_width / 64)` for
        ResNet-18/34, four times that for ResNet-50/101/152.
    """

    depth = None

    def __init__(
        self,
        width_multiplier: Literal[1, 2, 4] = 1,
        cifar_stem: bool | None = None,
        zero_init_residual: bool = True,
        base_width: Annotated[int, Range(1, 1024)] = 64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if self.depth not in ARCHITECTURES:
            raise TypeError(
                "ResNet is abstract: use resnet18, resnet34, resnet50, resnet101 "
                "or resnet152"
            )
        self.width_multiplier = width_multiplier
        self.cifar_stem = cifar_stem
        self.zero_init_residual = zero_init_residual
        self.base_width = base_width
        self.block_kind, self.blocks_per_stage = ARCHITECTURES[self.depth]
        # The layout between the layers (not saved: the variables are the
        # same in either); channels_first on torch, see `torch_speed`.
        self.data_format = torch_speed.internal_data_format()
        policy = self.dtype_policy
        width = base_width * width_multiplier
        self.stem = None
        self.stem_pool = None
        if cifar_stem is not None:
            self._make_stem(cifar_stem)
        self.blocks = []
        for stage, (count, stride) in enumerate(zip(self.blocks_per_stage, STAGE_STRIDES)):
            filters = width * 2**stage
            for index in range(count):
                self.blocks.append(
                    _Block(
                        self.block_kind,
                        filters,
                        strides=stride if index == 0 else 1,
                        projection=index == 0,
                        zero_init_residual=zero_init_residual,
                        data_format=self.data_format,
                        dtype=policy,
                        name=f"stage{stage + 1}_block{index + 1}",
                    )
                )
        self.output_dim = self.blocks[-1].out_channels
        self.pool = keras.layers.GlobalAveragePooling2D(data_format=self.data_format, dtype=policy)

    def _make_stem(self, cifar_stem):
        width = self.base_width * self.width_multiplier
        policy = self.dtype_policy
        self.cifar_stem = bool(cifar_stem)
        fmt = self.data_format
        if self.cifar_stem:
            self.stem = _ConvBN(width, 3, 1, data_format=fmt, dtype=policy, name="stem")
            self.stem_pool = None
        else:
            self.stem = _ConvBN(width, 7, 2, data_format=fmt, dtype=policy, name="stem")
            self.stem_pool = keras.layers.MaxPooling2D(
                3, strides=2, padding="same", data_format=fmt, dtype=policy
            )

    @staticmethod
    def auto_cifar_stem(input_shape):
        """The `cifar_stem: null` choice: on when the image side is <= 32."""
        sides = [s for s in input_shape[1:3] if s is not None]
        return bool(sides) and max(sides) <= CIFAR_STEM_MAX_SIDE

    def build(self, input_shape):
        if self.stem is None:
            self._make_stem(self.auto_cifar_stem(input_shape))
        shape = torch_speed.internal_shape(input_shape, self.data_format)
        self.stem.build(shape)
        shape = self.stem.compute_output_shape(shape)
        if self.stem_pool is not None:
            shape = self.stem_pool.compute_output_shape(shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)

    def call(self, images, training=False):
        call = torch_speed.call_layer
        x = torch_speed.to_internal(images, self.data_format)
        x = call(self.stem, x, training=training)
        if self.stem_pool is not None:
            x = call(self.stem_pool, x)
        for block in self.blocks:
            x = call(block, x, training=training)
        return call(self.pool, x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            width_multiplier=self.width_multiplier,
            cifar_stem=self.cifar_stem,
            zero_init_residual=self.zero_init_residual,
            base_width=self.base_width,
        )
        return config


@register("encoders", "resnet18")
class ResNet18(ResNet):
    """ResNet-18: basic blocks, (2, 2, 2, 2) per stage; h of width 512 x width.

    See `ResNet` for the arguments.
    """

    depth = 18


@register("encoders", "resnet34")
class ResNet34(ResNet):
    """ResNet-34: basic blocks, (3, 4, 6, 3) per stage; h of width 512 x width.

    See `ResNet` for the arguments.
    """

    depth = 34


@register("encoders", "resnet50")
class ResNet50(ResNet):
    """ResNet-50 (v1.5, as in the official SimCLR code): bottleneck blocks,
    (3, 4, 6, 3) per stage; h of width 2048 x width. The paper's encoder.

    See `ResNet` for the arguments.
    """

    depth = 50


@register("encoders", "resnet101")
class ResNet101(ResNet):
    """ResNet-101 (v1.5): bottleneck blocks, (3, 4, 23, 3) per stage; h of
    width 2048 x width.

    See `ResNet` for the arguments.
    """

    depth = 101


@register("encoders", "resnet152")
class ResNet152(ResNet):
    """ResNet-152 (v1.5): bottleneck blocks, (3, 8, 36, 3) per stage; h of
    width 2048 x width.

    See `ResNet` for the arguments.
    """

    depth = 152
