"""Built-in datasets."""

from contrastive.datasets import arrays, cifar, digits, image_folder  # noqa: F401
from contrastive.datasets.base import Arrays, Dataset  # noqa: F401
