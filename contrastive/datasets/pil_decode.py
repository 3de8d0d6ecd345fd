"""Decoding one image file's bytes with PIL, as every dataset that holds its
images in memory decodes them (`image_folder`, `file_list`, `tar_shards`)."""

import io
import re

import numpy as np
from PIL import Image

from contrastive.datasets.aspect import stored_shape

# Modes of one channel deeper than 8 bits (16-bit grayscale PNGs and TIFFs;
# "I" is how older Pillow opens a 16-bit PNG). `convert("RGB")` clips their
# values to 255, so that a 16-bit image turns near white.
_DEEP = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def decode_bytes(data, size, stored_side=None):
    """Decodes one JPEG, PNG or other image PIL reads to uint8
    `(size, size, 3)` (resized bilinear where it differs); with
    `stored_side`, to its stored shape instead (`aspect.stored_shape`: the
    aspect ratio kept).

    Returns:
        `(image, None)`, or `(None, reason)` for bytes PIL cannot read.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = rgb(image)
            target = (size, size)
            if stored_side is not None:
                height, width = stored_shape(image.height, image.width, stored_side)
                target = (width, height)
            if image.size != target:
                image = image.resize(target, Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8), None
    except Exception as exc:  # noqa: BLE001 (any undecodable file)
        return None, reason(exc)


def rgb(image):
    """`image` as 8-bit RGB. Images of 16 bits a channel keep their high
    byte (65535 becomes 255), as TensorFlow's decoder converts them."""
    if image.mode in _DEEP:
        values = np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
        image = Image.fromarray((values >> 8).astype(np.uint8))
    return image.convert("RGB")


def reason(exc):
    """Why a file could not be decoded, in words (no object reprs)."""
    if isinstance(exc, Image.UnidentifiedImageError):
        return "not an image PIL can read"
    text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "the file", str(exc)).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
