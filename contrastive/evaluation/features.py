"""Representations h of a frozen encoder."""

import keras
import numpy as np

from contrastive.evaluation.progress import Progress
from contrastive.model import to_unit_float


def encode(encoder, images, batch_size=256):
    """Returns h for `images` (uint8 or float NHWC) as a float32 NumPy array.

    The encoder runs in inference mode (batch norm uses its moving
    statistics), in batches of `batch_size`.
    """
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = to_unit_float(keras.ops.convert_to_tensor(images[start:start + batch_size]))
        h = encoder(batch, training=False)
        outputs.append(keras.ops.convert_to_numpy(keras.ops.cast(h, "float32")))
    return np.concatenate(outputs, axis=0)


def check_image_shape(encoder, data, key="data"):
    """Raises SpecError unless `data`'s images have the shape the saved
    `encoder` (a model with an input) takes."""
    from contrastive.errors import SpecError

    expected = tuple(encoder.inputs[0].shape[1:]) if getattr(encoder, "inputs", None) else None
    if expected and None not in expected and tuple(data.image_shape) != expected:
        raise SpecError(
            f"expected images of shape {expected} (what the encoder was trained on), "
            f"received {tuple(data.image_shape)}",
            key,
        )


def features_of(encoder, data, batch_size=256, verbose=0, title="h"):
    """Returns h for a dataset split (`Arrays`, or `Files` decoded batch by
    batch as they are encoded).

    Args:
        encoder: a model from float32 images in [0, 1] to h.
        data: the split.
        batch_size: images per encoder call.
        verbose: 0, 1 or `"auto"`: a progress bar on stderr, under `title`
            (see `contrastive.evaluation.progress`).
        title: the line above the bar.
    """
    progress = Progress(title, len(data), verbose, unit_name="image")
    outputs = []
    for batch in data.batches(batch_size):
        outputs.append(encode(encoder, batch, batch_size))
        progress.add(len(batch))
    return np.concatenate(outputs, axis=0)
