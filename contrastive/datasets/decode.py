"""Decoding image files with TensorFlow's decoders on CPU workers (tf.data):
used where image files are read as they are needed (`train.input: stream`,
and evaluation of such runs), with any Keras backend."""

import concurrent.futures
import os

import numpy as np

from contrastive.errors import DataError


def tf_module():
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
    return decode_contents(tf_module().io.read_file(path), size)


def decode_contents(contents, size):
    """Decodes the bytes of one JPEG or PNG (a string tensor) as `decode`
    decodes a file."""
    tf = tf_module()
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
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
    tf = tf_module()

    def check(path):
        try:
            decode(tf.constant(str(path)), size)
            return None
        except (tf.errors.OpError, ValueError) as exc:
            message = str(getattr(exc, "message", exc)).strip().splitlines()[0]
            return [str(path), f"{type(exc).__name__}: {message}"]

    from contrastive.evaluation.progress import Progress

    progress = Progress(f"checking {len(paths)} image files", len(paths), None, unit_name="file")
    bad = []
    workers = min(16, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for error in pool.map(check, paths):
            progress.add(1)
            if error:
                bad.append(error)
    return bad


def decode_all(files):
    """The decoded images of `files` as in-memory `Arrays`."""
    from contrastive.datasets.base import Arrays
    from contrastive.evaluation.progress import Progress

    progress = Progress(f"decoding {len(files)} images", len(files), None, unit_name="image")
    batches = []
    for batch in file_batches(files):
        batches.append(batch)
        progress.add(len(batch))
    return Arrays(np.concatenate(batches), files.labels, files.class_names)


def file_batches(files, batch_size=256):
    """Yields the decoded images of `files` in order, as uint8 NumPy batches
    of at most `batch_size`."""
    tf = tf_module()
    dataset = (
        tf.data.Dataset.from_tensor_slices([str(p) for p in files.paths])
        .map(lambda path: decode(path, files.size), num_parallel_calls=tf.data.AUTOTUNE,
             deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    for batch in dataset.as_numpy_iterator():
        yield batch
