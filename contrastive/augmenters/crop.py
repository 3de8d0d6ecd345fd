"""Random resized crop, per image, as in SimCLR (Inception-style crop)."""


from typing import Literal

import numpy as np
from keras import ops

from contrastive import torch_speed
from contrastive.augmenters._base import Augmenter, check_pair, log_uniform
from contrastive.registry import register
from contrastive.typecheck import FractionRange, PositiveRange, Seed, Width

# Candidate boxes drawn per image; the first that fits is kept (torchvision
# tries 10, the official code's TF op up to 100). If none fits, the whole
# image is used, as both do.
ATTEMPTS = 10
OFFICIAL_ATTEMPTS = 100
# The official code asks the TF op for crops covering at least 10% of the
# image (its `min_object_covered`, with the whole image as the object).
OFFICIAL_MIN_COVERED = 0.1
SAMPLERS = ("official", "torchvision")


# The official evaluation view (and torchvision's Resize(256) +
# CenterCrop(224)): a centred square of 0.875 of the shorter side.
CENTRE_PROPORTION = 0.875


class _NumpyOps:
    """The few `keras.ops` the box samplers use, on NumPy arrays, so that
    tf.data workers (`train.input: stream`) draw boxes with the same
    arithmetic without touching the Keras backend."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def cast(x, dtype):
        return np.asarray(x).astype(dtype)


NUMPY_OPS = _NumpyOps()


def _sides(xp, height, width):
    """The image sides as `(per attempt, per image)` operands: Python floats
    for one size shared by the batch, else `(B, 1)` and `(B,)` float32
    tensors of each image's own height and width."""
    if isinstance(height, (int, float)) and isinstance(width, (int, float)):
        return float(height), float(width), float(height), float(width)
    height, width = xp.cast(height, "float32"), xp.cast(width, "float32")
    return height[:, None], width[:, None], height, width


def sample_crop_boxes(seed, batch, height, width, scale=(0.08, 1.0),
                      ratio=(3 / 4, 4 / 3), attempts=ATTEMPTS):
    """Draws one crop box per image.

    The area fraction is uniform in `scale`, the aspect ratio (width/height)
    log-uniform in `ratio`; box sides are rounded to whole pixels and the
    offset is uniform over the positions where the box fits.

    Args:
        seed: a `keras.random.SeedGenerator` (or seed) for the draws.
        batch: how many boxes.
        height, width: the images' sides: integers shared by the batch, or
            `(B,)` tensors of each image's own sides (images of several
            sizes on one padded canvas, boxes in each image's coordinates).
        scale, ratio, attempts: see the class `RandomResizedCrop`.

    Returns:
        int32 `(B, 4)`: `[y0, x0, h, w]` per image.
    """
    shape = (batch, attempts)
    area = torch_speed.uniform(shape, scale[0], scale[1], seed=seed)
    aspect = log_uniform(seed, shape, ratio[0], ratio[1])
    offsets = torch_speed.uniform((batch, 2), seed=seed)
    return torchvision_boxes(ops, (area, aspect, offsets), height, width)


def torchvision_boxes(xp, draws, height, width):
    """`sample_crop_boxes` from its uniform draws `(area fraction (B, T),
    aspect (B, T), offsets (B, 2))`; `xp` is `keras.ops` or `NUMPY_OPS`."""
    area, aspect, u = draws
    hh, ww, h1, w1 = _sides(xp, height, width)
    attempts = area.shape[1]
    area = area * (hh * ww)
    w = xp.round(xp.sqrt(area * aspect))
    h = xp.round(xp.sqrt(area / aspect))
    fits = (w >= 1) & (h >= 1) & (w <= ww) & (h <= hh)
    first = xp.argmax(xp.cast(fits, "int32"), axis=1)
    pick = xp.cast(xp.equal(xp.arange(attempts)[None, :], first[:, None]), "float32")
    any_fits = xp.any(fits, axis=1)
    h = xp.where(any_fits, xp.sum(h * pick, axis=1), h1)
    w = xp.where(any_fits, xp.sum(w * pick, axis=1), w1)
    y0 = xp.minimum(xp.floor(u[:, 0] * (h1 - h + 1)), h1 - h)
    x0 = xp.minimum(xp.floor(u[:, 1] * (w1 - w + 1)), w1 - w)
    return xp.cast(xp.stack([y0, x0, h, w], axis=1), "int32")


def sample_official_boxes(seed, batch, height, width, scale=(0.08, 1.0),
                          ratio=(3 / 4, 4 / 3), attempts=OFFICIAL_ATTEMPTS,
                          min_covered=OFFICIAL_MIN_COVERED):
    """Draws one crop box per image as the official SimCLR code does:
    `tf.image.sample_distorted_bounding_box(bbox=whole image,
    min_object_covered=0.1, aspect_ratio_range=ratio, area_range=scale,
    max_attempts=100)`, whose kernel this follows step by step.

    Each attempt draws the aspect ratio uniformly in `ratio`, then the height
    as a uniform integer between the heights that give the smallest and the
    largest allowed area at that ratio (clipped to the image), the width as
    the rounded height x ratio, adjusts by one row when rounding leaves the
    area range, and keeps the box if its area lies in `scale` and covers at
    least `min_covered` of the image. Offsets are uniform integers in
    `[0, side - box side)` (0 for a full side), as the TF kernel draws them.
    The first kept attempt wins; with none, the whole image.

    `height` and `width` are integers, or `(B,)` tensors of each image's
    own sides, as for `sample_crop_boxes`.

    Returns:
        int32 `(B, 4)`: `[y0, x0, h, w]` per image.
    """
    shape = (batch, attempts)
    aspect = torch_speed.uniform(shape, ratio[0], ratio[1], seed=seed)
    u = torch_speed.uniform(shape, seed=seed)
    offsets = torch_speed.uniform((batch, 2), seed=seed)
    return official_boxes(ops, (aspect, u, offsets), height, width, scale, min_covered)


def official_boxes(xp, draws, height, width, scale=(0.08, 1.0),
                   min_covered=OFFICIAL_MIN_COVERED):
    """`sample_official_boxes` from its uniform draws `(aspect (B, T),
    height fraction (B, T), offsets (B, 2))`; `xp` is `keras.ops` or
    `NUMPY_OPS`."""
    aspect, u, offsets = draws
    hh, ww, h1, w1 = _sides(xp, height, width)
    attempts = aspect.shape[1]
    total = hh * ww
    min_area, max_area = scale[0] * total, scale[1] * total
    low = xp.round(xp.sqrt(min_area / aspect))
    high = xp.round(xp.sqrt(max_area / aspect))
    too_wide = xp.round(high * aspect) > ww
    narrow = xp.floor((ww + 0.5 - 1e-7) / aspect)
    narrow = xp.where(xp.round(narrow * aspect) > ww, narrow - 1, narrow)
    high = xp.minimum(xp.where(too_wide, narrow, high), hh)
    low = xp.minimum(low, high)
    h = low + xp.minimum(xp.floor(u * (high - low + 1)), high - low)
    w = xp.round(h * aspect)
    h = xp.where(w * h < min_area, h + 1, h)
    w = xp.round(h * aspect)
    h = xp.where(w * h > max_area, h - 1, h)
    w = xp.round(h * aspect)
    area = w * h
    fits = ((area >= min_area) & (area <= max_area) & (w <= ww) & (h <= hh)
            & (w > 0) & (h > 0) & (area >= min_covered * total))
    first = xp.argmax(xp.cast(fits, "int32"), axis=1)
    pick = xp.cast(xp.equal(xp.arange(attempts)[None, :], first[:, None]), "float32")
    any_fits = xp.any(fits, axis=1)
    h = xp.where(any_fits, xp.sum(h * pick, axis=1), h1)
    w = xp.where(any_fits, xp.sum(w * pick, axis=1), w1)
    y0 = xp.minimum(xp.floor(offsets[:, 0] * (h1 - h)), xp.maximum(h1 - h - 1, 0.0))
    x0 = xp.minimum(xp.floor(offsets[:, 1] * (w1 - w)), xp.maximum(w1 - w - 1, 0.0))
    return xp.cast(xp.stack([y0, x0, h, w], axis=1), "int32")


def centre_boxes(xp, height, width, proportion=CENTRE_PROPORTION):
    """The deterministic evaluation box of each image: a centred square of
    `proportion` of the shorter side (the official code's centre crop,
    torchvision's Resize + CenterCrop), in each image's coordinates.

    Args:
        xp: `keras.ops` or `NUMPY_OPS`.
        height, width: `(B,)` integer sides.

    Returns:
        int32 `(B, 4)`: `[y0, x0, h, w]` per image.
    """
    height, width = xp.cast(height, "float32"), xp.cast(width, "float32")
    side = xp.maximum(xp.round(proportion * xp.minimum(height, width)), 1.0)
    y0 = xp.floor((height - side + 1) / 2)
    x0 = xp.floor((width - side + 1) / 2)
    return xp.cast(xp.stack([y0, x0, side, side], axis=1), "int32")


def _cubic(t, a=-0.5):
    """Keys' cubic convolution kernel (a = -0.5: TF's and PIL's bicubic)."""
    t = ops.abs(t)
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return ops.where(t <= 1, near, ops.where(t < 2, far, ops.zeros_like(t)))


def _taps(start, length, out_size, interpolation):
    """Source indices and weights, per image, along one axis.

    Half-pixel centres: output pixel i samples crop coordinate
    (i + 0.5) * length / out_size - 0.5, as tf.image.resize (antialias off)
    does; bilinear clamps the coordinate to the crop, bicubic drops taps
    outside the crop and renormalises (TF's Keys kernel, as PIL does).

    All taps are computed at once along a last axis (a few dozen ops
    instead of a few dozen per tap: eager backends pay per op); every
    element gets the same arithmetic as tap by tap.

    Returns:
        `(index (B, out, taps), weight (B, out, taps))`.
    """
    start = ops.cast(start, "float32")[:, None]
    length = ops.cast(length, "float32")[:, None]
    i = ops.cast(ops.arange(out_size), "float32")[None, :]
    src = (i + 0.5) * length / out_size - 0.5
    if interpolation == "bilinear":
        src = ops.clip(src, 0.0, length - 1)
        f = ops.floor(src)
        t = src - f
        f1 = ops.minimum(f + 1, length - 1)
        return (ops.stack([f + start, f1 + start], axis=-1), ops.stack([1 - t, t], axis=-1))
    f = ops.floor(src)[:, :, None]
    t = (src[:, :, None] - f)
    k = ops.convert_to_tensor([-1.0, 0.0, 1.0, 2.0], "float32")
    last = (length - 1)[:, :, None]
    idx = f + k
    inside = (idx >= 0) & (idx <= last)
    weight = ops.where(inside, _cubic(t - k), 0.0)
    # The sum over the taps in the tap-by-tap order, and one division per
    # tap (XLA may turn a division by a broadcast into a product with the
    # reciprocal): the same rounding as tap by tap on every backend.
    w = [weight[:, :, tap] for tap in range(4)]
    total = w[0] + w[1] + w[2] + w[3]
    weight = ops.stack([x / total for x in w], axis=-1)
    return ops.clip(idx, 0.0, last) + start[:, :, None], weight


def _matrix(taps, size):
    """The `(B, out, size)` interpolation matrix of per-image taps.

    Resampling as two batched matrix products (rows, then columns) keeps the
    work on matmul units and avoids large gathers, which XLA runs slowly.
    """
    idx, weight = taps
    positions = ops.cast(ops.arange(size), "float32")[None, None, None, :]
    terms = ops.cast(ops.equal(idx[..., None], positions), "float32") * weight[..., None]
    out = terms[:, :, 0]
    for tap in range(1, terms.shape[2]):
        out = out + terms[:, :, tap]
    return out


def apply_crop(images, boxes, size, interpolation="bicubic"):
    """Crops each image to its box and resizes the crop to `size`.

    Equal to `tf.image.crop_to_bounding_box` then `tf.image.resize(...,
    antialias=False)` per image (and to PIL's crop + resize whenever the crop
    is not larger than the output), clipped to [0, 1].

    Args:
        images: float32 `(B, H, W, C)`.
        boxes: `(B, 4)` integers `[y0, x0, h, w]`.
        size: `(out_height, out_width)`.
        interpolation: `"bilinear"` or `"bicubic"`.
    """
    images = ops.convert_to_tensor(images, "float32")
    boxes = ops.convert_to_tensor(boxes, "float32")
    boxes = ops.cast(boxes, "float32")
    rows = _taps(boxes[:, 0], boxes[:, 2], size[0], interpolation)
    cols = _taps(boxes[:, 1], boxes[:, 3], size[1], interpolation)
    out = ops.einsum("boh,bhwc->bowc", _matrix(rows, images.shape[1]), images)
    out = ops.einsum("bpw,bowc->bopc", _matrix(cols, images.shape[2]), out)
    return ops.clip(out, 0.0, 1.0)


@register("augmenters", "random_resized_crop")
class RandomResizedCrop(Augmenter):
    """A random crop of each image, resized (the paper's "crop and resize").

    Each image gets its own box, then it is resized to `height` x `width`
    with half-pixel centres, no antialiasing (as the official code's
    `tf.image.resize`). Two samplers of the box:

    - `official`: the official code's `tf.image.sample_distorted_bounding_box`
      (see `sample_official_boxes`): aspect ratio uniform in `ratio`, height
      uniform between the allowed extremes, at least 10% of the image, up to
      100 tries (mean area about 0.42 for `scale` [0.08, 1]).
    - `torchvision`: torchvision's `RandomResizedCrop` (`sample_crop_boxes`):
      area fraction uniform in `scale`, aspect ratio log-uniform in `ratio`,
      up to 10 tries (mean area about 0.49).

    Either falls back to the whole image when no try fits.

    Args:
        height: output height; null keeps the input height.
        width: output width; null keeps the input width.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (width / height).
        interpolation: `bicubic` (the official code) or `bilinear`.
        sampler: `official` or `torchvision`.
        seed: seeds the random draws.
    """

    def __init__(
        self,
        height: Width | None = None,
        width: Width | None = None,
        scale: FractionRange = (0.08, 1.0),
        ratio: PositiveRange = (3 / 4, 4 / 3),
        interpolation: Literal["bilinear", "bicubic"] = "bicubic",
        sampler: Literal["official", "torchvision"] = "official",
        seed: Seed | None = None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler: expected one of official, torchvision, received {sampler!r}")
        self.sampler = sampler
        self.height = height
        self.width = width
        self.scale = check_pair("scale", scale, low=0.0, high=1.0, positive=True)
        self.ratio = check_pair("ratio", ratio, positive=True)
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(
                f"interpolation: expected one of bilinear, bicubic, received {interpolation!r}"
            )
        self.interpolation = interpolation

    def output_size(self, input_shape):
        return (self.height or input_shape[1], self.width or input_shape[2])

    def call(self, images, training=True, sizes=None):
        """Crops and resizes `images`.

        Args:
            images: `(B, H, W, C)` images.
            training: draw random boxes; otherwise the whole image (or,
                with `sizes`, the centred evaluation box `centre_boxes`).
            sizes: None, or int `(B, 2)`: each image's `(height, width)`
                at the top left of a padded canvas (aspect-kept images,
                see `Arrays.sizes`); boxes then fall in each image's own
                region and only the crop is resized.
        """
        from contrastive.augmenters._base import to_float_images

        images = to_float_images(images, self.name, self.channels)
        if sizes is not None:
            self.check_fixed_size(images)
            if training:
                return self.apply(images, self.sample_rows(
                    self, self.batch_size(images), tuple(images.shape), sizes))
            boxes = centre_boxes(ops, sizes[:, 0], sizes[:, 1])
            return self.apply(images, boxes)
        if not training:
            size = self.output_size(images.shape)
            if size == tuple(images.shape[1:3]):
                return images
            whole = ops.stack(
                [ops.zeros_like(images[:, 0, 0, 0]), ops.zeros_like(images[:, 0, 0, 0]),
                 ops.ones_like(images[:, 0, 0, 0]) * images.shape[1],
                 ops.ones_like(images[:, 0, 0, 0]) * images.shape[2]], axis=1)
            return apply_crop(images, whole, size, self.interpolation)
        return self.augment(images)

    def check_fixed_size(self, images):
        """Raises ValueError unless the output height and width are set (a
        padded canvas's shape is no image's)."""
        if self.height is None or self.width is None:
            raise ValueError(
                f"{self.name}: expected height and width for images of several sizes "
                f"(a padded canvas), received height={self.height}, width={self.width}"
            )

    def sample(self, batch, shape, sizes=None):
        """Boxes for `batch` images of `shape`; with `sizes` (`(B, 2)`),
        in each image's own height and width."""
        _, height, width, _ = shape
        if sizes is not None:
            sizes = ops.convert_to_tensor(sizes)
            height, width = sizes[:, 0], sizes[:, 1]
        sample = sample_official_boxes if self.sampler == "official" else sample_crop_boxes
        return sample(self.seed_generator, batch, height, width, self.scale, self.ratio)

    def boxes(self, rng, count, height, width):
        """`count` boxes of one `height` x `width` image, drawn with the
        NumPy generator `rng` by this crop's sampler: what
        `train.input: stream` crops on its CPU workers."""
        def draw(shape, low=0.0, high=1.0):
            return rng.uniform(low, high, shape).astype(np.float32)

        if self.sampler == "official":
            draws = (draw((count, OFFICIAL_ATTEMPTS), *self.ratio),
                     draw((count, OFFICIAL_ATTEMPTS)), draw((count, 2)))
            return official_boxes(NUMPY_OPS, draws, height, width, self.scale)
        logs = np.log(np.asarray(self.ratio, np.float32))
        draws = (draw((count, ATTEMPTS), *self.scale),
                 np.exp(draw((count, ATTEMPTS), logs[0], logs[1])), draw((count, 2)))
        return torchvision_boxes(NUMPY_OPS, draws, height, width)

    def apply(self, images, boxes):
        return apply_crop(images, boxes, self.output_size(images.shape), self.interpolation)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size(input_shape), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(
            height=self.height,
            width=self.width,
            scale=list(self.scale),
            ratio=list(self.ratio),
            interpolation=self.interpolation,
            sampler=self.sampler,
        )
        return config


