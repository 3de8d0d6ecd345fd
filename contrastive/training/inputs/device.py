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
        sizes: None, or int array `(N, 2)`: each image's height and width
            on the padded canvas `images` (aspect-kept images).

    Call arguments:
        indices: int array `(B,)`.

    Returns:
        The uint8 images of the batch, `(B, H, W, C)`; with `sizes`,
        `{"images": those, "sizes": (B, 2)}`.
    """

    def __init__(self, images, sizes=None, **kwargs):
        super().__init__(**kwargs)
        self.images = self.add_weight(
            shape=images.shape, dtype="uint8", trainable=False, name="images",
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(images, "uint8"),
        )
        self.sizes = None
        if sizes is not None:
            self.sizes = self.add_weight(
                shape=sizes.shape, dtype="int32", trainable=False, name="sizes",
                initializer=lambda shape, dtype=None: ops.convert_to_tensor(sizes, "int32"),
            )
        self.built = True

    def call(self, indices):
        indices = ops.cast(indices, "int32")
        images = ops.take(self.images, indices, axis=0)
        if self.sizes is None:
            return images
        return {"images": images, "sizes": ops.take(self.sizes, indices, axis=0)}

    def compute_output_spec(self, indices):
        images = keras.KerasTensor((indices.shape[0], *self.images.shape[1:]), dtype="uint8")
        if self.sizes is None:
            return images
        return {"images": images,
                "sizes": keras.KerasTensor((indices.shape[0], 2), dtype="int32")}

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

    def _form(self, rows):
        return rows  # indices; the input layer makes the images (and sizes)

    def input_layer(self):
        return ResidentImages(self.data.images, self.data.sizes, name="resident")

    def example(self, count=2):
        return np.zeros((count,), np.int32)
