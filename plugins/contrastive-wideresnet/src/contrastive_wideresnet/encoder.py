"""WRN-d-k: pre-activation wide residual blocks, channels last, any backend."""

import keras

from contrastive.typecheck import PositiveInt, Probability

_BN = {"momentum": 0.9, "epsilon": 1e-5}


class _WideBlock(keras.layers.Layer):
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 plus a shortcut; the
    shortcut is a 1x1 convolution of the pre-activated input when the width
    or resolution changes (the official WRN code)."""

    def __init__(self, width, stride, dropout, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.stride = stride
        self.bn1 = keras.layers.BatchNormalization(**_BN)
        self.conv1 = keras.layers.Conv2D(
            width, 3, strides=stride, padding="same", use_bias=False,
            kernel_initializer="he_normal",
        )
        self.bn2 = keras.layers.BatchNormalization(**_BN)
        self.dropout = keras.layers.Dropout(dropout) if dropout > 0 else None
        self.conv2 = keras.layers.Conv2D(
            width, 3, padding="same", use_bias=False, kernel_initializer="he_normal"
        )
        self.shortcut = None

    def build(self, input_shape):
        self.bn1.build(input_shape)
        self.conv1.build(input_shape)
        shape = self.conv1.compute_output_shape(input_shape)
        self.bn2.build(shape)
        self.conv2.build(shape)
        if self.stride != 1 or input_shape[-1] != self.width:
            self.shortcut = keras.layers.Conv2D(
                self.width, 1, strides=self.stride, padding="same", use_bias=False,
                kernel_initializer="he_normal",
            )
            self.shortcut.build(input_shape)

    def call(self, x, training=False):
        pre = keras.activations.relu(self.bn1(x, training=training))
        y = self.conv1(pre)
        y = keras.activations.relu(self.bn2(y, training=training))
        if self.dropout is not None:
            y = self.dropout(y, training=training)
        y = self.conv2(y)
        skip = self.shortcut(pre) if self.shortcut is not None else x
        return y + skip

    def compute_output_shape(self, input_shape):
        shape = self.conv1.compute_output_shape(input_shape)
        return (*shape[:-1], self.width)


class WideResNet(keras.layers.Layer):
    """A Wide Residual Network, WRN-`depth`-`widen_factor` (Zagoruyko and
    Komodakis, BMVC 2016), as the encoder f.

    A 3x3 convolution to 16 channels, then three groups of (depth - 4) / 6
    pre-activation basic blocks of widths 16k, 32k and 64k (strides 1, 2, 2),
    then batch norm, ReLU and global average pooling. WRN-28-2 and WRN-28-10
    are the usual CIFAR choices; WRN-28-2 has about 1.5 M parameters.

    Args:
        depth: total depth d; (d - 4) must be divisible by 6 (10, 16, 22,
            28, 40...).
        widen_factor: k, the width multiplier.
        dropout: dropout rate between the two convolutions of each block
            (0: none).

    Call arguments:
        images: float images `(B, H, W, C)`, values in [0, 1].
        training: batch-norm statistics and dropout in training mode.

    Returns:
        h of shape `(B, 64 * widen_factor)`.
    """

    def __init__(
        self,
        depth: PositiveInt = 28,
        widen_factor: PositiveInt = 2,
        dropout: Probability = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(
                f"depth: expected 6n + 4 with n >= 1 (10, 16, 22, 28, 40...), received {depth}"
            )
        if widen_factor < 1:
            raise ValueError(f"widen_factor: expected an integer >= 1, received {widen_factor}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout: expected a number in [0, 1), received {dropout}")
        self.depth = int(depth)
        self.widen_factor = int(widen_factor)
        self.dropout = float(dropout)
        per_group = (self.depth - 4) // 6
        widths = [16 * self.widen_factor, 32 * self.widen_factor, 64 * self.widen_factor]
        self.stem = keras.layers.Conv2D(
            16, 3, padding="same", use_bias=False, kernel_initializer="he_normal"
        )
        self.blocks = []
        for group, width in enumerate(widths):
            for index in range(per_group):
                stride = 2 if group > 0 and index == 0 else 1
                self.blocks.append(_WideBlock(width, stride, self.dropout))
        self.bn = keras.layers.BatchNormalization(**_BN)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.output_dim = widths[-1]

    def build(self, input_shape):
        self.stem.build(input_shape)
        shape = self.stem.compute_output_shape(input_shape)
        for block in self.blocks:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        self.bn.build(shape)

    def call(self, images, training=False):
        x = self.stem(images)
        for block in self.blocks:
            x = block(x, training=training)
        x = keras.activations.relu(self.bn(x, training=training))
        return self.pool(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            depth=self.depth, widen_factor=self.widen_factor, dropout=self.dropout
        )
        return config
