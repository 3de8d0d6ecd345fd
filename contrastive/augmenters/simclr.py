"""The SimCLR augmentation: crop, flip, colour distortion, optional blur."""

from typing import Literal

from contrastive import torch_speed
from contrastive.augmenters._base import Augmenter, to_float_images
from contrastive.augmenters.blur import RandomGaussianBlur
from contrastive.augmenters.color import ColorJitter, RandomGrayscale
from contrastive.augmenters.crop import RandomResizedCrop
from contrastive.augmenters.flip import RandomFlip
from contrastive.augmenters.solarize import RandomSolarize
from contrastive.registry import register
from contrastive.typecheck import (
    FractionRange,
    NonNegativeFloat,
    PositiveRange,
    Probability,
    Seed,
    Width,
)

# The paper's settings. imagenet: Section 3 / Appendix A; cifar10: Appendix
# B.9 (colour strength 0.5, no blur). Everything else is shared.
PRESETS = {
    "imagenet": {"strength": 1.0, "blur": True},
    "cifar10": {"strength": 0.5, "blur": False},
}
COMMON = {
    "crop_scale": (0.08, 1.0),
    "crop_ratio": (3 / 4, 4 / 3),
    "crop_sampler": "official",
    "interpolation": "bicubic",
    "flip_probability": 0.5,
    "jitter_probability": 0.8,
    "grayscale_probability": 0.2,
    "blur_probability": 0.5,
    "blur_sigma": (0.1, 2.0),
    "solarize_probability": 0.0,
}


@register("augmenters", "simclr")
class SimCLRAugment(Augmenter):
    """SimCLR's stochastic augmentation; one call makes one view.

    In order: random resized crop (to `size`), horizontal flip, colour jitter
    (probability 0.8, strength s, random order), grayscale (probability 0.2),
    Gaussian blur (probability 0.5, when on), and solarization (off unless
    `solarize_probability` > 0; not in SimCLR). Every argument left null
    takes the `preset`'s value:

    | preset | strength | blur |
    | --- | --- | --- |
    | imagenet | 1.0 | on |
    | cifar10 | 0.5 | off |

    and, for both: crop_scale [0.08, 1.0], crop_ratio [3/4, 4/3],
    crop_sampler official (the official code's box sampling; `torchvision`
    for torchvision's, see `RandomResizedCrop`), interpolation bicubic, flip_probability 0.5, jitter_probability 0.8,
    grayscale_probability 0.2, blur_probability 0.5, blur_sigma [0.1, 2.0],
    solarize_probability 0.0.

    Input: `(B, H, W, 3)` uint8 0..255 or float in [0, 1]; output float32 in
    [0, 1] of shape `(B, size, size, 3)`.

    Args:
        preset: `imagenet` or `cifar10`.
        size: output side; null keeps the input's height and width.
        strength: colour distortion strength s.
        crop_scale: range of the crop's area fraction.
        crop_ratio: range of the crop's aspect ratio.
        crop_sampler: how the crop box is drawn: `official` or `torchvision`.
        interpolation: `bicubic` or `bilinear` resizing of the crop.
        flip_probability: probability of a horizontal flip.
        jitter_probability: probability of colour jitter.
        grayscale_probability: probability of grayscale.
        blur: Gaussian blur on or off.
        blur_probability: probability of blur when on.
        blur_sigma: range of the blur's sigma, in pixels.
        solarize_probability: probability of solarization (threshold 0.5).
        seed: seeds the random draws (the trainer passes the spec's seed).
    """

    channels = 3

    def __init__(
        self,
        preset: Literal["cifar10", "imagenet"] = "imagenet",
        size: Width | None = None,
        strength: NonNegativeFloat | None = None,
        crop_scale: FractionRange | None = None,
        crop_ratio: PositiveRange | None = None,
        crop_sampler: Literal["official", "torchvision"] | None = None,
        interpolation: Literal["bilinear", "bicubic"] | None = None,
        flip_probability: Probability | None = None,
        jitter_probability: Probability | None = None,
        grayscale_probability: Probability | None = None,
        blur: bool | None = None,
        blur_probability: Probability | None = None,
        blur_sigma: PositiveRange | None = None,
        solarize_probability: Probability | None = None,
        seed: Seed | None = None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        if preset not in PRESETS:
            raise ValueError(f"preset: expected one of cifar10, imagenet, received {preset!r}")
        self.preset = preset
        self.size = size
        given = dict(
            strength=strength,
            crop_scale=crop_scale,
            crop_ratio=crop_ratio,
            crop_sampler=crop_sampler,
            interpolation=interpolation,
            flip_probability=flip_probability,
            jitter_probability=jitter_probability,
            grayscale_probability=grayscale_probability,
            blur=blur,
            blur_probability=blur_probability,
            blur_sigma=blur_sigma,
            solarize_probability=solarize_probability,
        )
        self.overrides = {k: v for k, v in given.items() if v is not None}
        self.settings = {**COMMON, **PRESETS[preset], **self.overrides}
        self._make_stages(self.settings, size, seed)

    def _make_stages(self, st, size, seed):
        def sub(i):  # each stage's own seed, within what every backend accepts
            return None if seed is None else (seed * 16 + i) % 2**32

        self.crop = RandomResizedCrop(
            height=size, width=size, scale=st["crop_scale"], ratio=st["crop_ratio"],
            interpolation=st["interpolation"], sampler=st["crop_sampler"], seed=sub(1),
            name="crop",
        )
        self.flip = RandomFlip(p=st["flip_probability"], seed=sub(2), name="flip")
        self.jitter = ColorJitter(
            strength=st["strength"], p=st["jitter_probability"], seed=sub(3), name="jitter"
        )
        self.grayscale = RandomGrayscale(
            p=st["grayscale_probability"], seed=sub(4), name="grayscale"
        )
        self.blur = None
        if st["blur"]:
            self.blur = RandomGaussianBlur(
                p=st["blur_probability"], sigma=st["blur_sigma"], seed=sub(5), name="blur"
            )
        self.solarize = None
        if st["solarize_probability"] > 0:
            self.solarize = RandomSolarize(
                p=st["solarize_probability"], seed=sub(6), name="solarize"
            )

    @property
    def stages(self):
        parts = [self.crop, self.flip, self.jitter, self.grayscale, self.blur, self.solarize]
        return [p for p in parts if p is not None]

    def call(self, images, training=True, sizes=None, cropped=False):
        """One view of each image.

        Args:
            images: `(B, H, W, 3)` images.
            training: augment; otherwise the crop's evaluation view.
            sizes: None, or int `(B, 2)`: each image's `(height, width)` on
                a padded canvas (aspect-kept images): the crop's box is
                drawn in each image's own geometry (see `RandomResizedCrop`).
            cropped: the images are crops already (made on CPU workers by
                `train.input: stream`, see `crop_boxes`): every stage but
                the crop.
        """
        images = to_float_images(images, self.name, self.channels)
        if not training:
            return self.crop(images, training=False, sizes=sizes)
        return self.augment(images, sizes, cropped)

    def augment(self, images, sizes=None, cropped=False):
        # Every stage's random draws first (each stage has its own seed
        # generator, so the numbers are those of stage-by-stage draws), then
        # the image ops as one stretch without draws: one graph when
        # compiled on torch (`torch_speed.compiled_apply`).
        batch = self.batch_size(images)
        shape = tuple(images.shape)
        params = []
        for stage in self.stages:
            if stage is self.crop and cropped:
                params.append(None)
                continue
            if stage is self.crop and sizes is not None:
                stage.check_fixed_size(images)
                params.append(self.sample_rows(stage, batch, shape, sizes))
            else:
                params.append(self.sample_rows(stage, batch, shape))
            shape = tuple(stage.compute_output_shape(shape))
        return torch_speed.apply_stages(self, images, params)

    def apply(self, images, params):
        for stage, stage_params in zip(self.stages, params):
            if stage is self.crop and stage_params is None:
                continue  # cropped on the CPU workers already
            images = stage.apply(images, stage_params)
        return images

    def crop_boxes(self, rng, count, height, width):
        """`count` crop boxes of one `height` x `width` image, drawn with the
        NumPy generator `rng` as this augmenter's crop draws them on the
        device: see `RandomResizedCrop.boxes`."""
        return self.crop.boxes(rng, count, height, width)

    @property
    def crop_size(self):
        """The side of the crops, or None when the crop keeps the input's."""
        return self.size

    @property
    def crop_interpolation(self):
        """How the crops are resized: `bicubic` or `bilinear`."""
        return self.settings["interpolation"]

    def compute_output_shape(self, input_shape):
        return self.crop.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(preset=self.preset, size=self.size)
        for key in COMMON.keys() | {"strength", "blur"}:
            value = self.overrides.get(key)
            config[key] = list(value) if isinstance(value, tuple) else value
        return config
