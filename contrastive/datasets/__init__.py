"""Built-in datasets."""

from contrastive.datasets import arrays, cifar, digits, file_list, image_folder  # noqa: F401
from contrastive.datasets.base import Arrays, Dataset  # noqa: F401
