"""Images kept at their own aspect ratio: the stored size of each image, the
padded canvas that holds images of several sizes, and the deterministic
evaluation view of each.

A random resized crop then draws its box in each image's own geometry and
resizes only the crop (as the official SimCLR code and torchvision crop the
decoded original), instead of cropping an image already squashed to a
square.
"""

import numpy as np

# The longer side is bounded at this multiple of the stored shorter side
# (a wider image is stored smaller, its aspect still kept), so that one odd
# panorama does not widen the canvas of the whole set.
MAX_ASPECT = 3.0


def default_stored_side(size):
    """The stored shorter side for crops of `size`: `size / 0.875` (256 for
    224, torchvision's evaluation resize), so that the centred evaluation
    view (`CENTRE_PROPORTION` of the shorter side) is `size` unresized."""
    from contrastive.augmenters.crop import CENTRE_PROPORTION

    return round(size / CENTRE_PROPORTION)


def resolve_stored_side(keep_aspect, stored_side, size):
    """The stored shorter side a dataset's `keep_aspect` and `stored_side`
    arguments ask for: None (images squashed to `size`), `stored_side`, or
    `default_stored_side(size)`.

    Raises:
        ValueError: `stored_side` without `keep_aspect`.
    """
    if stored_side is not None and not keep_aspect:
        raise ValueError(
            f"stored_side: expected keep_aspect: true with it, received stored_side="
            f"{stored_side} and keep_aspect: false"
        )
    if not keep_aspect:
        return None
    return stored_side or default_stored_side(size)


def stored_shape(height, width, side, max_aspect=MAX_ASPECT):
    """`(height, width)` of an image stored with its shorter side `side`
    (and its longer side at most `max_aspect * side`), aspect kept within
    rounding."""
    scale = min(side / min(height, width), max_aspect * side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def pad_to_canvas(images):
    """Stacks uint8 `(h, w, 3)` images of several sizes at the top left of
    one zero canvas.

    Returns:
        `(canvas (N, H, W, 3), sizes (N, 2) int32)`, `H` and `W` the largest
        height and width.
    """
    sizes = np.array([image.shape[:2] for image in images], np.int32).reshape(-1, 2)
    canvas = np.zeros((len(images), *sizes.max(axis=0), 3), np.uint8)
    for row, image in zip(canvas, images):
        row[:image.shape[0], :image.shape[1]] = image
    return canvas, sizes


def centre_views(canvas, sizes, size, interpolation="bicubic"):
    """The deterministic evaluation view of each image on `canvas`: the
    centred square `centre_boxes` cropped and resized to `size` (the
    official code's evaluation crop), as uint8 `(B, size, size, 3)`."""
    from keras import ops

    from contrastive.augmenters.crop import NUMPY_OPS, apply_crop, centre_boxes

    sizes = np.asarray(sizes)
    boxes = centre_boxes(NUMPY_OPS, sizes[:, 0], sizes[:, 1])
    images = ops.convert_to_tensor(np.asarray(canvas, np.float32) / 255.0)
    views = ops.convert_to_numpy(apply_crop(images, boxes, (size, size), interpolation))
    return np.round(views * 255).astype(np.uint8)
