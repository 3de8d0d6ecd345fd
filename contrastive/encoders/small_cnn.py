"""A small convolutional encoder for quick runs and tests."""

from typing import Annotated

import keras

from contrastive.registry import register
from contrastive.typecheck import Length, Width


@register("encoders", "small_cnn")
class SmallCNN(keras.layers.Layer):
    """Conv-BN-ReLU stages, each halving the resolution, then global pooling.

    Args:
        widths: channels of each stage; each stage is a 3x3 convolution,
            batch norm, ReLU and a stride-2 3x3 convolution.

    Returns h of shape `(B, widths[-1])`.
    """

    def __init__(self, widths: Annotated[tuple[Width, ...], Length(1)] = (32, 64, 128), **kwargs):
        super().__init__(**kwargs)
        self.widths = tuple(widths)
        self.blocks = []
        for width in self.widths:
            self.blocks.append(
                [
                    keras.layers.Conv2D(width, 3, padding="same", use_bias=False),
                    keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                    keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False),
                    keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5),
                ]
            )
        self.pool = keras.layers.GlobalAveragePooling2D()

    def build(self, input_shape):
        shape = input_shape
        for conv1, bn1, conv2, bn2 in self.blocks:
            conv1.build(shape)
            shape = conv1.compute_output_shape(shape)
            bn1.build(shape)
            conv2.build(shape)
            shape = conv2.compute_output_shape(shape)
            bn2.build(shape)

    def call(self, images, training=False):
        x = images
        for conv1, bn1, conv2, bn2 in self.blocks:
            x = keras.activations.relu(bn1(conv1(x), training=training))
            x = keras.activations.relu(bn2(conv2(x), training=training))
        return self.pool(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.widths[-1])

    def get_config(self):
        config = super().get_config()
        config.update(widths=list(self.widths))
        return config
