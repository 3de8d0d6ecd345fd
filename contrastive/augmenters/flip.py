"""Random horizontal flip, per image."""

from keras import ops

from contrastive.augmenters._base import Augmenter, bernoulli, per_image
from contrastive.registry import register
from contrastive.typecheck import Probability, Seed


def apply_flip(images, flip):
    """Flips left-right the images where `flip` `(B,)` is true."""
    images = ops.convert_to_tensor(images, "float32")
    flip = ops.convert_to_tensor(flip, "bool")
    return ops.where(per_image(flip), ops.flip(images, axis=2), images)


@register("augmenters", "random_flip")
class RandomFlip(Augmenter):
    """Flips each image left-right with probability `p`, independently.

    Args:
        p: the probability of a flip.
        seed: seeds the random draws.
    """

    def __init__(self, p: Probability = 0.5, seed: Seed | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.p = p

    def sample(self, batch, shape):
        return bernoulli(self.seed_generator, batch, self.p)

    def apply(self, images, flip):
        return apply_flip(images, flip)

    def get_config(self):
        config = super().get_config()
        config["p"] = self.p
        return config
