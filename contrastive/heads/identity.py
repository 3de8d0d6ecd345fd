"""No projection head: z = h."""

import keras

from contrastive.registry import register


@register("heads", "identity")
class IdentityHead(keras.layers.Layer):
    """No head (the paper's "none" of Figure 8): the loss sees h itself.

    z is h cast to float32, so that the loss runs in float32 under a mixed
    precision policy.
    """

    def call(self, h, training=False):
        return keras.ops.cast(h, "float32")

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, h, training=False):
        return keras.KerasTensor(h.shape, dtype="float32")
