"""`train.input: device`: the training set held in device memory, batched
there by index."""

import keras
import numpy as np
from keras import ops

from contrastive.training.inputs.memory import MemoryInput


class ResidentImages(keras.layers.Layer):
    """Holds uint8 images in a non-trainable variable, placed on the device
    once, and gathers batches from it by index.

    The variable is data, not a weight: it is neither saved nor loaded with
    the model's weights. Under a distribution every replica holds the whole
    set and gathers its share of the batch.

    Args:
        images: uint8 array `(N, H, W, C)`.

    Call arguments:
        indices: int array `(B,)`.

    Returns:
        The uint8 images of the batch, `(B, H, W, C)`.
    """

    def __init__(self, images, **kwargs):
        super().__init__(**kwargs)
        self.images = self.add_weight(
            shape=images.shape, dtype="uint8", trainable=False, name="images",
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(images, "uint8"),
        )
        self.built = True

    def call(self, indices):
        return ops.take(self.images, ops.cast(indices, "int32"), axis=0)

    def compute_output_spec(self, indices):
        return keras.KerasTensor((indices.shape[0], *self.images.shape[1:]), dtype="uint8")

    def save_own_variables(self, store):
        del store

    def load_own_variables(self, store):
        del store


class DeviceInput(MemoryInput):
    """`fit` is fed only each batch's indices (and labels, a few bytes a
    step); the model's input layer, `ResidentImages`, gathers the images on
    the device, so no image crosses from the host during training."""

    mode = "device"

    def _rows(self):
        return (np.arange(len(self.data), dtype=np.int32),)

    def input_layer(self):
        return ResidentImages(self.data.images, name="resident")

    def example(self, count=2):
        return np.zeros((count,), np.int32)
