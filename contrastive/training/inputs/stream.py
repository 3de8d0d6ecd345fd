"""`train.input: stream`: image files read as training goes, with tf.data
(decoding and resizing on CPU workers; augmentation stays on the device).
Works with every Keras backend, and needs tensorflow installed."""

import numpy as np

from contrastive.datasets.decode import (
    crop_and_resize,
    decode,
    decode_contents,
    decode_original,
    decode_original_contents,
    tf_module,
)
from contrastive.datasets.shards import Shards
from contrastive.training.inputs.base import TrainingInput
from contrastive.training.inputs.skips import StreamSkips


class StreamInput(TrainingInput):
    """Epoch `e` visits the files in the order `epoch_order(..., seed, e)`,
    the order the in-memory modes use, so a resumed run sees the batches an
    uninterrupted one would have seen. Tar shards (`Shards`) are read
    sequentially instead, in an order drawn from the seed and the epoch
    (`Shards.stream`).

    A file that cannot be read or decoded once training has begun is
    skipped: named in a warning, counted in `skipped`, and replaced by the
    next candidate (after the epoch's order, a spare permutation drawn from
    `(seed, epoch)`), so every batch stays full.

    Images kept at their aspect ratio (`Files.stored_side`,
    `Shards.stored_side`) are cropped on the CPU workers, as the official
    SimCLR pipeline does: each decoded original (a file, or a shard
    member's bytes) gets two boxes drawn by the augmenter's crop sampler
    (`crop_boxes`) from a generator seeded by `(seed, epoch, index)` (so a
    resumed run draws the same crops), each resized to the crop size; the
    model receives `{"views": (B, 2, size, size, 3)}` and its augmenter
    skips its own crop.

    Args:
        data: the `Files` or `Shards` to stream.
        (the others as `TrainingInput`.)
    """

    mode = "stream"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.streamed_skips = StreamSkips(self._name_of)
        self._streamed = {}
        if self.crops and not hasattr(self.augmenter, "crop_boxes"):
            raise ValueError(
                "augment: expected an augmenter that crops on CPU workers (with "
                "`crop_boxes`, such as simclr) to stream images kept at their aspect "
                f"ratio, received {type(self.augmenter).__name__}"
            )

    @property
    def skipped(self):
        return (*super().skipped, *self.streamed_skips.names)

    @property
    def crops(self):
        """Whether the workers crop (aspect-kept images)."""
        return getattr(self.data, "stored_side", None) is not None

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
        epoch_items = (self._shard_items if isinstance(self.data, Shards)
                       else self._file_items)
        need = self.steps_per_epoch * self.local_batch_size
        labels = tf.constant(np.zeros(len(self.data), np.int32) if self.data.labels is None
                             else np.asarray(self.data.labels, np.int32))

        def with_label(image, index, epoch, position):
            return image, tf.gather(labels, index), epoch, position

        def epoch_batches(epoch):
            return (
                epoch_items(epoch)
                .map(with_label)
                .ignore_errors()
                .take(need)
            )

        return (
            tf.data.Dataset.range(first_epoch, epochs)
            .flat_map(epoch_batches)
            .batch(self.local_batch_size, drop_remainder=True)
            .map(self.streamed_skips.batch_map(self.with_labels))
            .prefetch(tf.data.AUTOTUNE)
        )

    def candidates(self, epoch):
        """The files epoch `epoch` may read, in order: this process' rows
        of its batches, then its rows of a spare permutation that stands in
        for files found unreadable."""
        spare = np.random.default_rng([self.seed, epoch, 1]).permutation(len(self.data))
        whole = len(spare) // self.batch_size * self.batch_size
        spare = spare[:whole].reshape(-1, self.batch_size)[:, self.rows]
        return np.concatenate([self.local_order(epoch).reshape(-1),
                               spare.reshape(-1)]).astype(np.int64)

    def _file_items(self, epoch):
        tf = tf_module()
        paths = tf.constant([str(p) for p in self.data.paths])
        indices = tf.ensure_shape(
            tf.numpy_function(lambda e: self.candidates(int(e)), [epoch], tf.int64), (None,))
        count = tf.shape(indices, out_type=tf.int64)[0]

        def load(index, epoch, position):
            path = tf.gather(paths, index)
            if self.crops:
                image = self.crop_views(decode_original(path), epoch, index)
            else:
                image = decode(path, self.data.size)
            return image, index, epoch, position

        def items(start, stop):
            return (
                tf.data.Dataset.from_tensor_slices((indices[start:stop],
                                                    tf.fill([stop - start], epoch),
                                                    tf.range(start, stop)))
                .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            )

        # The spares are decoded only once an unreadable file asks for one
        # (`concatenate` starts its second part when the first is done), so
        # the parallel map never reads ahead beyond this process' rows.
        need = tf.constant(self.steps_per_epoch * self.local_batch_size, tf.int64)
        return items(0, need).concatenate(items(need, count))

    def _shard_items(self, epoch):
        tf = tf_module()

        def read(epoch):
            epoch = int(epoch)
            # Older epochs' records are no longer needed to name a skip.
            self._streamed = {e: v for e, v in self._streamed.items() if e >= epoch - 1}
            streamed = self._streamed[epoch] = []
            mine = range(self.batch_size)[self.rows]  # this process' rows of each batch
            for position, (index, data) in enumerate(self.data.stream(self.seed, epoch)):
                if position % self.batch_size in mine:
                    streamed.append(index)
                    yield data, index, epoch, len(streamed) - 1

        def load(data, index, epoch, position):
            if self.crops:
                image = self.crop_views(decode_original_contents(data), epoch, index)
            else:
                image = decode_contents(data, self.data.size)
            return image, index, epoch, position

        signature = (tf.TensorSpec((), tf.string), *[tf.TensorSpec((), tf.int64)] * 3)
        return (
            tf.data.Dataset.from_generator(read, args=(epoch,), output_signature=signature)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        )

    def _name_of(self, epoch, position):
        if isinstance(self.data, Shards):
            return self.data.name(self._streamed[epoch][position])
        return str(self.data.paths[self.candidates(epoch)[position]])

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
