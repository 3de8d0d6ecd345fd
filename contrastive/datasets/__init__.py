"""Built-in datasets."""

from contrastive.datasets import (  # noqa: F401
    arrays,
    cifar,
    digits,
    file_list,
    image_folder,
    tar_shards,
)
from contrastive.datasets.base import Arrays, Dataset  # noqa: F401
