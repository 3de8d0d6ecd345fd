"""`train.input: stream`: image files read as training goes, with tf.data
(decoding and resizing on CPU workers; augmentation stays on the device).
Works with every Keras backend, and needs tensorflow installed."""

import numpy as np

from contrastive.datasets.decode import decode, tf_module
from contrastive.training.inputs.base import TrainingInput


class StreamInput(TrainingInput):
    """Epoch `e` visits the files in the order `epoch_order(..., seed, e)`,
    the order the in-memory modes use, so a resumed run sees the batches an
    uninterrupted one would have seen.

    Args:
        data: the `Files` to stream.
        (the others as `TrainingInput`.)
    """

    mode = "stream"

    def fit_arguments(self, first_epoch, epochs):
        return {"x": self.dataset(first_epoch, epochs), "steps_per_epoch": self.steps_per_epoch}

    def dataset(self, first_epoch, epochs):
        """The batches of epochs `first_epoch .. epochs - 1`, one after the
        other, as a `tf.data.Dataset`."""
        tf = tf_module()
        files = self.data
        paths = tf.constant([str(p) for p in files.paths])
        labels = tf.constant(np.zeros(len(files), np.int32) if files.labels is None
                             else np.asarray(files.labels, np.int32))

        def order(epoch):
            return self.local_order(int(epoch)).reshape(-1).astype(np.int64)

        def epoch_indices(epoch):
            indices = tf.numpy_function(order, [epoch], tf.int64)
            return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(indices, (None,)))

        def load(index):
            image = decode(tf.gather(paths, index), files.size)
            if self.with_labels:
                return image, tf.gather(labels, index)
            return (image,)

        return (
            tf.data.Dataset.range(first_epoch, epochs)
            .flat_map(epoch_indices)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(self.local_batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
