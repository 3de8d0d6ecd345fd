"""CIFAR-10 and CIFAR-100: a local copy, or Keras' downloader."""

import pathlib
from typing import Literal

import numpy as np

from contrastive.datasets.base import Arrays, Dataset, not_found
from contrastive.datasets.image_folder import ImageFolder
from contrastive.errors import DataError
from contrastive.registry import register
from contrastive.typecheck import PathText, PositiveInt

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")


class _Cifar(Dataset):
    splits = ("train", "test")
    archive_prefix = ""

    def __init__(
        self,
        path: PathText | None = None,
        limit_per_class: PositiveInt | None = None,
        on_error: Literal["skip", "fail"] = "skip",
    ):
        self.path = path
        self.limit_per_class = limit_per_class
        self.on_error = on_error

    def load(self, split="train"):
        self.check_split(split)
        if self.path is None:
            return self._download(split)
        return ImageFolder(
            str(self._local(split)), size=32, limit_per_class=self.limit_per_class,
            on_error=self.on_error,
        ).load("train")

    def files(self, split="train", check=True):
        self.check_split(split)
        if self.path is None:
            return super().files(split)
        return ImageFolder(
            str(self._local(split)), size=32, limit_per_class=self.limit_per_class,
            on_error=self.on_error,
        ).files("train", check=check)

    def count(self, split="train"):
        self.check_split(split)
        if self.path is None:
            return None
        return ImageFolder(str(self._local(split)), size=32,
                           limit_per_class=self.limit_per_class).count("train")

    def shape(self, split="train"):
        self.check_split(split)
        return (32, 32, 3)

    @property
    def can_stream(self):
        return self.path is not None

    @property
    def needs_download(self):
        return self.path is None

    def _local(self, split):
        root = pathlib.Path(self.path)
        candidates = [
            root / f"{self.archive_prefix}-{split}.tar.gz",
            root / f"{split}.tar.gz",
            root / split,
        ]
        for candidate in candidates:
            if candidate.exists():
                return candidate
        if not root.is_dir():
            raise not_found(root, "folder")
        raise DataError(
            f"{root}: expected {' or '.join(c.name for c in candidates)} for the {split} split"
        )

    def _download(self, split):
        images, labels = self._keras_load()[0 if split == "train" else 1]
        labels = labels.reshape(-1).astype(np.int32)
        if self.limit_per_class is not None:
            keep = np.sort(np.concatenate([
                np.flatnonzero(labels == c)[: self.limit_per_class] for c in np.unique(labels)
            ]))
            images, labels = images[keep], labels[keep]
        return Arrays(images.astype(np.uint8), labels, self.class_names)


@register("datasets", "cifar10")
class Cifar10(_Cifar):
    """CIFAR-10: 50,000 training and 10,000 test images of 32x32 in 10 classes.

    Args:
        path: a local copy: a folder holding `cifar10-train.tar.gz` and
            `cifar10-test.tar.gz` (or `train.tar.gz`/`test.tar.gz`, or
            `train/` and `test/` image folders with one sub-folder per
            class). Null downloads it with `keras.datasets.cifar10`.
        limit_per_class: at most this many images of each class.
        on_error: what to do with unreadable files of a local copy.
    """

    archive_prefix = "cifar10"
    class_names = CIFAR10_CLASSES

    def _keras_load(self):
        import keras

        return keras.datasets.cifar10.load_data()


@register("datasets", "cifar100")
class Cifar100(_Cifar):
    """CIFAR-100 (fine labels): 50,000 training and 10,000 test images.

    Args:
        path: a local copy laid out as for `cifar10` (archives named
            `cifar100-train.tar.gz`, `cifar100-test.tar.gz`). Null downloads
            it with `keras.datasets.cifar100`.
        limit_per_class: at most this many images of each class.
        on_error: what to do with unreadable files of a local copy.
    """

    archive_prefix = "cifar100"
    class_names = ()

    def _keras_load(self):
        import keras

        return keras.datasets.cifar100.load_data(label_mode="fine")
