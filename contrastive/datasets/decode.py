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


def decode_original(path):
    """Reads and decodes one JPEG or PNG file to uint8 `(h, w, 3)`, at its
    own size."""
    return decode_original_contents(tf_module().io.read_file(path))


def decode_original_contents(contents):
    """Decodes the bytes of one JPEG or PNG (a string tensor) as
    `decode_original` decodes a file (a tar shard's member, say)."""
    tf = tf_module()
    image = tf.io.decode_image(contents, channels=3, expand_animations=False)
    return tf.ensure_shape(image, (None, None, 3))


def decode_stored(path, side, max_aspect=None):
    """Reads and decodes one file, resized (bilinear, antialiased) so that
    its shorter side is `side`, its aspect ratio kept (see
    `contrastive.datasets.aspect.stored_shape`)."""
    from contrastive.datasets.aspect import MAX_ASPECT

    tf = tf_module()
    image = decode_original(path)
    shape = tf.cast(tf.shape(image)[:2], tf.float64)
    max_aspect = MAX_ASPECT if max_aspect is None else max_aspect
    scale = tf.minimum(side / tf.reduce_min(shape), max_aspect * side / tf.reduce_max(shape))
    # Python's round (half to even) as `stored_shape` does, on float64.
    target = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
    resized = tf.image.resize(image, target, method="bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def crop_and_resize(image, box, size, interpolation="bicubic"):
    """The crop `box` (`[y0, x0, h, w]`) of one uint8 image, resized to
    `size` x `size` with half-pixel centres and no antialiasing (what
    `contrastive.augmenters.crop.apply_crop` computes on the device), as
    uint8."""
    tf = tf_module()
    crop = tf.image.crop_to_bounding_box(image, box[0], box[1], box[2], box[3])
    resized = tf.image.resize(tf.cast(crop, tf.float32), (size, size), method=interpolation,
                              antialias=False)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def centre_box(image):
    """`contrastive.augmenters.crop.centre_boxes` of one image, in TF."""
    from contrastive.augmenters.crop import CENTRE_PROPORTION

    tf = tf_module()
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    side = tf.maximum(tf.round(CENTRE_PROPORTION * tf.reduce_min(shape)), 1.0)
    offsets = tf.floor((shape - side + 1) / 2)
    return tf.cast(tf.stack([offsets[0], offsets[1], side, side]), tf.int32)


def decode_view(path, size, side):
    """The deterministic evaluation view of one aspect-kept image: stored
    with shorter side `side` (`decode_stored`), then its centred box
    (`centre_box`) resized to `size` x `size` (bicubic), as in memory."""
    image = decode_stored(path, side)
    return crop_and_resize(image, centre_box(image), size)


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
    if files.stored_side is None:
        batches = []
        for batch in file_batches(files):
            batches.append(batch)
            progress.add(len(batch))
        return Arrays(np.concatenate(batches), files.labels, files.class_names)
    from contrastive.datasets.aspect import pad_to_canvas

    tf = tf_module()
    dataset = tf.data.Dataset.from_tensor_slices([str(p) for p in files.paths]).map(
        lambda path: decode_stored(path, files.stored_side),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images = []
    for image in dataset.as_numpy_iterator():
        images.append(image)
        progress.add(1)
    canvas, sizes = pad_to_canvas(images)
    return Arrays(canvas, files.labels, files.class_names, sizes=sizes, view_size=files.size)


def file_batches(files, batch_size=256):
    """Yields the decoded images of `files` in order, as uint8 NumPy batches
    of at most `batch_size`."""
    tf = tf_module()

    def load(path):
        if files.stored_side is None:
            return decode(path, files.size)
        return decode_view(path, files.size, files.stored_side)

    dataset = (
        tf.data.Dataset.from_tensor_slices([str(p) for p in files.paths])
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    for batch in dataset.as_numpy_iterator():
        yield batch
