"""The default dataset: scikit-learn's handwritten digits, offline."""

from typing import Annotated

import numpy as np
from PIL import Image

from contrastive.datasets.base import Arrays, Dataset, as_uint8_images
from contrastive.registry import register
from contrastive.typecheck import Range

_Fraction = Annotated[float, Range(0, 1, min_inclusive=False, max_inclusive=False)]


@register("datasets", "digits")
class Digits(Dataset):
    """UCI handwritten digits as shipped with scikit-learn (no download).

    1,797 grey 8x8 images of the digits 0-9, upscaled to `size` and repeated
    to three channels. The `train` and `test` splits are a fixed stratified
    split.

    Args:
        size: output side in pixels.
        test_fraction: the share of each class held out as `test`.
    """

    splits = ("train", "test")

    def __init__(
        self,
        size: Annotated[int, Range(8, 512)] = 32,
        test_fraction: _Fraction = 0.2,
    ):
        self.size = size
        self.test_fraction = test_fraction

    def count(self, split="train"):
        self.check_split(split)
        from sklearn.datasets import load_digits

        labels = load_digits().target
        test = _stratified_mask(labels, self.test_fraction, seed=0)
        return int(test.sum() if split == "test" else (~test).sum())

    def load(self, split="train"):
        self.check_split(split)
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0 * 255).round().astype(np.uint8)
        if self.size != 8:
            images = np.stack(
                [
                    np.asarray(
                        Image.fromarray(im).resize(
                            (self.size, self.size), Image.Resampling.BILINEAR
                        )
                    )
                    for im in images
                ]
            )
        labels = digits.target.astype(np.int32)
        test = _stratified_mask(labels, self.test_fraction, seed=0)
        keep = test if split == "test" else ~test
        names = tuple(str(d) for d in range(10))
        return Arrays(as_uint8_images(images[keep], "digits"), labels[keep], names)


def _stratified_mask(labels, fraction, seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        mask[idx[: int(round(len(idx) * fraction))]] = True
    return mask
