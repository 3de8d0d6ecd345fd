"""Colour distortion: colour jitter in random order, and random grayscale.

Formulas of the official SimCLR code (`data_util.py`, `impl='simclrv2'`, the
default of both the v1 and v2 repositories' TF2 code), each per image:

- brightness: multiplicative, x * f, f uniform in [max(0, 1 - b), 1 + b];
- contrast: `tf.image.adjust_contrast`, (x - m) * f + m with m the image's
  per-channel mean, f uniform in [max(0, 1 - c), 1 + c];
- saturation: `tf.image.adjust_saturation`, HSV saturation times f (clipped
  to [0, 1]), f uniform in [max(0, 1 - s), 1 + s];
- hue: `tf.image.adjust_hue`, HSV hue plus d (mod 1), d uniform in [-h, h];

with b = c = s = 0.8 * strength and h = 0.2 * strength. The four operations
are applied in an order drawn per image, each result clipped to [0, 1].
"""

from keras import ops

from contrastive import torch_speed
from contrastive.augmenters._base import Augmenter, bernoulli, per_image, uniform
from contrastive.registry import register
from contrastive.typecheck import NonNegativeFloat, Probability, Seed

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale
BRIGHTNESS, CONTRAST, SATURATION, HUE = 0, 1, 2, 3


def adjust_brightness(images, factor):
    """x * factor, per image (`factor` `(B,)`); not clipped."""
    images = ops.convert_to_tensor(images, "float32")
    factor = ops.convert_to_tensor(factor, "float32")
    return images * per_image(factor)


def adjust_contrast(images, factor):
    """(x - mean) * factor + mean, mean per image and channel; not clipped."""
    images = ops.convert_to_tensor(images, "float32")
    factor = ops.convert_to_tensor(factor, "float32")
    mean = ops.mean(images, axis=(1, 2), keepdims=True)
    return (images - mean) * per_image(factor) + mean


def _hsv(images):
    hsv = ops.image.rgb_to_hsv(images)
    return hsv[..., 0], hsv[..., 1], hsv[..., 2]


def _rgb(h, s, v):
    return ops.image.hsv_to_rgb(ops.stack([h, s, v], axis=-1))


def _shift_hue(h, delta):
    h = h + delta
    return h - ops.floor(h)


def adjust_saturation(images, factor):
    """HSV saturation times `factor` `(B,)`, clipped to [0, 1]."""
    images = ops.convert_to_tensor(images, "float32")
    factor = ops.convert_to_tensor(factor, "float32")
    h, s, v = _hsv(images)
    return _rgb(h, ops.clip(s * ops.reshape(factor, (-1, 1, 1)), 0.0, 1.0), v)


def adjust_hue(images, delta):
    """HSV hue plus `delta` `(B,)` (in turns), modulo 1."""
    images = ops.convert_to_tensor(images, "float32")
    delta = ops.convert_to_tensor(delta, "float32")
    h, s, v = _hsv(images)
    return _rgb(_shift_hue(h, ops.reshape(delta, (-1, 1, 1))), s, v)


def to_grayscale(images):
    """Luma with tf.image.rgb_to_grayscale's weights, repeated to 3 channels."""
    images = ops.convert_to_tensor(images, "float32")
    w = ops.convert_to_tensor(GRAY_WEIGHTS, "float32")
    gray = ops.sum(images * w, axis=-1, keepdims=True)
    return ops.repeat(ops.clip(gray, 0.0, 1.0), 3, axis=-1)


def jitter_ranges(strength, brightness=None, contrast=None, saturation=None, hue=None):
    """The four maxima: 0.8 s, 0.8 s, 0.8 s, 0.2 s unless given."""
    return (
        0.8 * strength if brightness is None else brightness,
        0.8 * strength if contrast is None else contrast,
        0.8 * strength if saturation is None else saturation,
        0.2 * strength if hue is None else hue,
    )


def apply_jitter(images, factors, order):
    """Applies the four jitter operations in each image's own order.

    Args:
        images: float32 `(B, H, W, 3)` in [0, 1].
        factors: `(B, 4)`: brightness factor, contrast factor, saturation
            factor, hue delta.
        order: int `(B, 4)`: a permutation of 0..3 per image (0 brightness,
            1 contrast, 2 saturation, 3 hue); round r applies `order[:, r]`.

    Returns:
        The jittered images, clipped to [0, 1] after every operation.
    """
    images = ops.convert_to_tensor(images, "float32")
    factors = ops.convert_to_tensor(factors, "float32")
    order = ops.convert_to_tensor(order, "int32")
    fb, fc, fs, dh = (factors[:, i] for i in range(4))
    x = images
    for r in range(4):
        op = order[:, r]
        # Saturation and hue share one trip through HSV.
        h, s, v = _hsv(x)
        is_sat = ops.reshape(op == SATURATION, (-1, 1, 1))
        is_hue = ops.reshape(op == HUE, (-1, 1, 1))
        h = ops.where(is_hue, _shift_hue(h, ops.reshape(dh, (-1, 1, 1))), h)
        s = ops.where(is_sat, ops.clip(s * ops.reshape(fs, (-1, 1, 1)), 0.0, 1.0), s)
        hsv_result = _rgb(h, s, v)
        rgb_result = ops.where(
            per_image(op == BRIGHTNESS), adjust_brightness(x, fb), adjust_contrast(x, fc)
        )
        x = ops.where(per_image(op <= CONTRAST), rgb_result, hsv_result)
        x = ops.clip(x, 0.0, 1.0)
    return x


def sample_jitter(seed, batch, ranges, random_order=True):
    """Per-image jitter parameters and order: `(factors (B, 4), order (B, 4))`."""
    b, c, s, h = ranges
    factors = ops.stack(
        [
            uniform(seed, batch, max(0.0, 1.0 - b), 1.0 + b),
            uniform(seed, batch, max(0.0, 1.0 - c), 1.0 + c),
            uniform(seed, batch, max(0.0, 1.0 - s), 1.0 + s),
            uniform(seed, batch, -h, h),
        ],
        axis=1,
    )
    if random_order:
        order = ops.argsort(torch_speed.uniform((batch, 4), seed=seed), axis=1)
    else:
        order = ops.zeros((batch, 4), "int32") + ops.arange(4, dtype="int32")[None, :]
    return factors, ops.cast(order, "int32")


@register("augmenters", "color_jitter")
class ColorJitter(Augmenter):
    """Colour jitter with probability `p`, the official SimCLR way.

    Brightness, contrast, saturation and hue, each with its own per-image
    parameter, in a per-image random order, clipped after each (see the
    module docstring for the formulas).

    Args:
        strength: s; sets brightness, contrast and saturation to 0.8 s and
            hue to 0.2 s.
        brightness: overrides 0.8 s.
        contrast: overrides 0.8 s.
        saturation: overrides 0.8 s.
        hue: overrides 0.2 s (at most 0.5).
        p: the probability of jittering an image.
        random_order: draw the order per image (official); false applies
            brightness, contrast, saturation, hue.
        seed: seeds the random draws.
    """

    channels = 3

    def __init__(
        self,
        strength: NonNegativeFloat = 1.0,
        brightness: NonNegativeFloat | None = None,
        contrast: NonNegativeFloat | None = None,
        saturation: NonNegativeFloat | None = None,
        hue: NonNegativeFloat | None = None,
        p: Probability = 0.8,
        random_order: bool = True,
        seed: Seed | None = None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.strength = strength
        self.brightness = brightness
        self.contrast = contrast
        self.saturation = saturation
        self.hue = hue
        self.p = p
        self.random_order = random_order
        self.ranges = jitter_ranges(strength, brightness, contrast, saturation, hue)
        if self.ranges[3] > 0.5:
            raise ValueError(f"hue: expected at most 0.5, received {self.ranges[3]:g}")

    def sample(self, batch, shape):
        factors, order = sample_jitter(self.seed_generator, batch, self.ranges, self.random_order)
        return factors, order, bernoulli(self.seed_generator, batch, self.p)

    def apply(self, images, params):
        factors, order, apply = params
        return ops.where(per_image(apply), apply_jitter(images, factors, order), images)

    def get_config(self):
        config = super().get_config()
        config.update(
            strength=self.strength,
            brightness=self.brightness,
            contrast=self.contrast,
            saturation=self.saturation,
            hue=self.hue,
            p=self.p,
            random_order=self.random_order,
        )
        return config


@register("augmenters", "random_grayscale")
class RandomGrayscale(Augmenter):
    """Turns each image to grayscale (3 equal channels) with probability `p`.

    Args:
        p: the probability of converting an image.
        seed: seeds the random draws.
    """

    channels = 3

    def __init__(self, p: Probability = 0.2, seed: Seed | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.p = p

    def sample(self, batch, shape):
        return bernoulli(self.seed_generator, batch, self.p)

    def apply(self, images, apply):
        return ops.where(per_image(apply), to_grayscale(images), images)

    def get_config(self):
        config = super().get_config()
        config["p"] = self.p
        return config
