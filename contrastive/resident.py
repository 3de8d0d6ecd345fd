"""A training set held in device memory and batched there by index."""

import keras
from keras import ops


class ResidentImages(keras.layers.Layer):
    """Holds uint8 images (and labels) in non-trainable variables, placed on
    the device once, and gathers batches from them by index.

    With it, `fit` is fed only the indices of each batch, so no image
    crosses from the host in training. The variables are data, not
    weights: they are neither saved nor loaded with the model's weights.
    Under a distribution every replica holds the whole set and gathers its
    share of the batch.

    Args:
        images: uint8 array `(N, H, W, C)`.
        labels: int array `(N,)`, or None.

    Call arguments:
        indices: int array `(B,)`.

    Returns:
        `(images, labels)` of the batch; `labels` is None without labels.
    """

    def __init__(self, images, labels=None, **kwargs):
        super().__init__(**kwargs)
        self.images = self._hold(images, "uint8", "images")
        self.labels = None if labels is None else self._hold(labels, "int32", "labels")
        self.built = True

    def _hold(self, array, dtype, name):
        return self.add_weight(
            shape=array.shape, dtype=dtype, trainable=False, name=name,
            initializer=lambda shape, dtype=None: ops.convert_to_tensor(array, dtype),
        )

    def call(self, indices):
        indices = ops.cast(indices, "int32")
        images = ops.take(self.images, indices, axis=0)
        labels = None if self.labels is None else ops.take(self.labels, indices, axis=0)
        return images, labels

    def save_own_variables(self, store):
        del store

    def load_own_variables(self, store):
        del store
