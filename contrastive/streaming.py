"""tf.data pipelines that stream image files: decoding and resizing run on
CPU workers, and the batches of uint8 images go to the model, which
augments them on the device. Used by `train.input: stream` for datasets
larger than memory, with any Keras backend."""

import concurrent.futures
import os

import numpy as np

from contrastive.batches import epoch_order
from contrastive.errors import DataError


def _tf():
    try:
        import tensorflow as tf
    except ImportError:
        raise DataError(
            "streaming image files needs tensorflow (for tf.data); install "
            "contrastive[tensorflow], or use train.input: memory"
        ) from None
    return tf


def decode(path, size):
    """Reads and decodes one JPEG or PNG file to a uint8 `(size, size, 3)`
    tensor, resized (bilinear, antialiased) where its shape differs."""
    tf = _tf()
    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    shape = tf.shape(image)

    def resize():
        resized = tf.image.resize(image, (size, size), method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
    image = tf.cond(same, lambda: image, resize)
    return tf.ensure_shape(image, (size, size, 3))


def unreadable(paths, size):
    """The files of `paths` that `decode` cannot read, as `[path, error]`
    pairs, found by decoding every file once on a thread pool."""
    tf = _tf()

    def check(path):
        try:
            decode(tf.constant(str(path)), size)
            return None
        except (tf.errors.OpError, ValueError) as exc:
            message = str(getattr(exc, "message", exc)).strip().splitlines()[0]
            return [str(path), f"{type(exc).__name__}: {message}"]

    workers = min(16, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return [error for error in pool.map(check, paths) if error]


def training_stream(files, batch_size, seed, steps_per_epoch, first_epoch, epochs,
                    with_labels=False):
    """The batches of epochs `first_epoch .. epochs - 1`, one after the other.

    Each epoch visits the files in the order `contrastive.batches.epoch_order`
    gives for `(seed, epoch)`, the order the in-memory inputs use, so that
    a resumed run sees the batches an uninterrupted one would have seen.
    Pass it to `fit` with `steps_per_epoch`.

    Args:
        files: the `Files` to stream.
        batch_size: images per batch.
        seed: the shuffling seed.
        steps_per_epoch: batches per epoch.
        first_epoch: the first epoch to stream.
        epochs: the end of the run.
        with_labels: yield `(images, labels)` instead of `(images,)`.

    Returns:
        A `tf.data.Dataset`.
    """
    tf = _tf()
    paths = tf.constant([str(p) for p in files.paths])
    labels = tf.constant(np.zeros(len(files), np.int32) if files.labels is None else files.labels)
    n = len(files)

    def order(epoch):
        rows = epoch_order(n, batch_size, steps_per_epoch, seed, int(epoch))
        return rows.reshape(-1).astype(np.int64)

    def epoch_indices(epoch):
        indices = tf.numpy_function(order, [epoch], tf.int64)
        return tf.data.Dataset.from_tensor_slices(tf.ensure_shape(indices, (None,)))

    def load(index):
        image = decode(tf.gather(paths, index), files.size)
        if with_labels:
            return image, tf.gather(labels, index)
        return (image,)

    return (
        tf.data.Dataset.range(first_epoch, epochs)
        .flat_map(epoch_indices)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def decode_all(files):
    """The decoded images of `files` as in-memory `Arrays`."""
    from contrastive.datasets.base import Arrays

    return Arrays(np.concatenate(list(file_batches(files))), files.labels, files.class_names)


def file_batches(files, batch_size=256):
    """Yields the decoded images of `files` in order, as uint8 NumPy batches
    of at most `batch_size`."""
    tf = _tf()
    dataset = (
        tf.data.Dataset.from_tensor_slices([str(p) for p in files.paths])
        .map(lambda path: decode(path, files.size), num_parallel_calls=tf.data.AUTOTUNE,
             deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    for batch in dataset.as_numpy_iterator():
        yield batch
