"""Random solarization (BYOL's augmentation; not part of SimCLR)."""

from keras import ops

from contrastive.augmenters._base import Augmenter, bernoulli, per_image
from contrastive.registry import register
from contrastive.typecheck import Probability, Seed


def apply_solarize(images, threshold, apply=None):
    """Inverts the pixels at or above `threshold`: x -> 1 - x (BYOL).

    Args:
        images: float32 `(B, H, W, C)` in [0, 1].
        threshold: a number in [0, 1].
        apply: optional `(B,)` mask; images where it is false are unchanged.
    """
    images = ops.convert_to_tensor(images, "float32")
    out = ops.where(images < threshold, images, 1.0 - images)
    if apply is None:
        return out
    return ops.where(per_image(ops.convert_to_tensor(apply, "bool")), out, images)


@register("augmenters", "solarize")
class RandomSolarize(Augmenter):
    """Solarizes each image with probability `p`: pixels >= `threshold`
    become 1 - x (BYOL uses p 0.2 on its second view, threshold 0.5).

    Args:
        p: the probability of solarizing an image.
        threshold: the value (in [0, 1]) from which pixels are inverted.
        seed: seeds the random draws.
    """

    def __init__(
        self,
        p: Probability = 0.2,
        threshold: Probability = 0.5,
        seed: Seed | None = None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.p = p
        self.threshold = threshold

    def sample(self, batch, shape):
        return bernoulli(self.seed_generator, batch, self.p)

    def apply(self, images, mask):
        return apply_solarize(images, self.threshold, mask)

    def get_config(self):
        config = super().get_config()
        config.update(p=self.p, threshold=self.threshold)
        return config
