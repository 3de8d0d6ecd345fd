"""`train.input: stream`: image files read as training goes, with tf.data
(decoding and resizing on CPU workers; augmentation stays on the device).
Works with every Keras backend, and needs tensorflow installed."""

import numpy as np

from contrastive.datasets.decode import (
    crop_and_resize,
    decode,
    decode_original,
    tf_module,
)
from contrastive.training.inputs.base import TrainingInput


class StreamInput(TrainingInput):
    """Epoch `e` visits the files in the order `epoch_order(..., seed, e)`,
    the order the in-memory modes use, so a resumed run sees the batches an
    uninterrupted one would have seen.

    Images kept at their aspect ratio (`Files.stored_side`) are cropped on
    the CPU workers, as the official SimCLR pipeline does: each decoded
    original gets two boxes drawn by the augmenter's crop sampler
    (`crop_boxes`) from a generator seeded by `(seed, epoch, index)` (so a
    resumed run draws the same crops), each resized to the crop size; the
    model receives `{"views": (B, 2, size, size, 3)}` and its augmenter
    skips its own crop.

    Args:
        data: the `Files` to stream.
        (the others as `TrainingInput`.)
    """

    mode = "stream"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.crops and not hasattr(self.augmenter, "crop_boxes"):
            raise ValueError(
                "augment: expected an augmenter that crops on CPU workers (with "
                "`crop_boxes`, such as simclr) to stream images kept at their aspect "
                f"ratio, received {type(self.augmenter).__name__}"
            )

    @property
    def crops(self):
        """Whether the workers crop (aspect-kept images)."""
        return self.data.stored_side is not None

    @property
    def crop_size(self):
        return getattr(self.augmenter, "crop_size", None) or self.data.size

    def fit_arguments(self, first_epoch, epochs):
        return {"x": self.dataset(first_epoch, epochs), "steps_per_epoch": self.steps_per_epoch}

    def example(self, count=2):
        if not self.crops:
            return super().example(count)
        return {"views": np.zeros((count, 2, self.crop_size, self.crop_size, 3), np.uint8)}

    def boxes(self, epoch, index, height, width):
        """The two crop boxes `(2, 4)` of image `index` (`height` x `width`)
        in `epoch`."""
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        boxes = self.augmenter.crop_boxes(rng, 2, int(height), int(width))
        return np.asarray(boxes, np.int32)

    def dataset(self, first_epoch, epochs):
        """The batches of epochs `first_epoch .. epochs - 1`, one after the
        other, as a `tf.data.Dataset`."""
        tf = tf_module()
        files = self.data
        paths = tf.constant([str(p) for p in files.paths])
        labels = tf.constant(np.zeros(len(files), np.int32) if files.labels is None
                             else np.asarray(files.labels, np.int32))

        def order(epoch):
            return self.order(int(epoch)).reshape(-1).astype(np.int64)

        def epoch_indices(epoch):
            indices = tf.ensure_shape(tf.numpy_function(order, [epoch], tf.int64), (None,))
            return tf.data.Dataset.from_tensor_slices((tf.fill(tf.shape(indices), epoch),
                                                       indices))

        def load(epoch, index):
            path = tf.gather(paths, index)
            if self.crops:
                image = self.crop_views(decode_original(path), epoch, index)
            else:
                image = decode(path, files.size)
            if self.with_labels:
                return image, tf.gather(labels, index)
            return (image,)

        return (
            tf.data.Dataset.range(first_epoch, epochs)
            .flat_map(epoch_indices)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(self.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )

    def crop_views(self, image, epoch, index):
        """`{"views": (2, size, size, 3)}`: two crops of one decoded image."""
        tf = tf_module()
        shape = tf.shape(image)
        boxes = tf.numpy_function(self.boxes, [epoch, index, shape[0], shape[1]], tf.int32)
        boxes = tf.ensure_shape(boxes, (2, 4))
        size = self.crop_size
        interpolation = getattr(self.augmenter, "crop_interpolation", "bicubic")
        views = [crop_and_resize(image, boxes[i], size, interpolation) for i in range(2)]
        return {"views": tf.ensure_shape(tf.stack(views), (2, size, size, 3))}
