"""Images and labels from `.npz` or `.npy` files."""

import pathlib
import zipfile

import numpy as np

from contrastive.datasets.base import (
    Arrays,
    Dataset,
    as_uint8_images,
    checked_labels,
    not_found,
)
from contrastive.errors import DataError
from contrastive.registry import register
from contrastive.typecheck import PathText


@register("datasets", "arrays")
class ArrayFiles(Dataset):
    """Images (and optional labels) stored as NumPy files.

    Files are read with `allow_pickle=False`. Images are uint8 0..255 or
    floats in [0, 1], shaped `(N, H, W)` or `(N, H, W, C)` with C 1 or 3.

    Args:
        path: the training `.npz` (keys `images_key`, optional `labels_key`)
            or `.npy` (images only).
        test_path: an optional held-out file of the same form (split `test`).
        images_key: the images' key in a `.npz`.
        labels_key: the labels' key in a `.npz`.
    """

    def __init__(
        self,
        path: PathText,
        test_path: PathText | None = None,
        images_key: str = "images",
        labels_key: str = "labels",
    ):
        self.path = path
        self.test_path = test_path
        self.images_key = images_key
        self.labels_key = labels_key
        self.splits = ("train", "test") if test_path else ("train",)

    def count(self, split="train"):
        """The images' count from the array headers (nothing decompressed),
        which are checked as `load` checks the arrays: images of shape
        (N, H, W) or (N, H, W, C) with C 1 or 3, uint8 or float, and integer
        labels of shape (N,)."""
        return self._images_shape(split)[0]

    def shape(self, split="train"):
        """The images' `(H, W, 3)` (grayscale is made RGB), from the headers."""
        return (*self._images_shape(split)[1:3], 3)

    def _images_shape(self, split):
        self.check_split(split)
        path = pathlib.Path(self.test_path if split == "test" else self.path)
        if not path.exists():
            raise not_found(path)
        labels = None
        try:
            if path.suffix == ".npz":
                with zipfile.ZipFile(path) as archive:
                    with archive.open(f"{self.images_key}.npy") as member:
                        shape, dtype = _header(member)
                    if f"{self.labels_key}.npy" in archive.namelist():
                        with archive.open(f"{self.labels_key}.npy") as member:
                            labels = _header(member)
            else:
                with open(path, "rb") as member:
                    shape, dtype = _header(member)
        except KeyError:
            raise DataError(f"{path}: expected an array named '{self.images_key}'") from None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path}: cannot read as .npy/.npz: {exc}") from None
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] not in (1, 3)):
            raise DataError(f"{path}: expected images of shape (N, H, W) or (N, H, W, C) with "
                            f"C 1 or 3, received shape {shape}")
        if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
            raise DataError(f"{path}: expected uint8 or float images, received dtype {dtype}")
        if labels is not None and (labels[0] != (shape[0],)
                                   or not np.issubdtype(labels[1], np.integer)):
            raise DataError(f"{path}: expected integer labels of shape ({shape[0]},), "
                            f"received {labels[1]} of shape {labels[0]}")
        return shape

    def load(self, split="train"):
        self.check_split(split)
        path = pathlib.Path(self.test_path if split == "test" else self.path)
        try:
            data = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise not_found(path) from None
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read as .npy/.npz: {exc}") from None
        labels = None
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if self.images_key not in data.files:
                    raise DataError(
                        f"{path}: expected an array named '{self.images_key}', "
                        f"received arrays {', '.join(data.files) or '(none)'}"
                    )
                try:
                    images = data[self.images_key]
                    if self.labels_key in data.files:
                        labels = data[self.labels_key]
                except (OSError, ValueError) as exc:
                    raise DataError(f"{path}: cannot read as .npy/.npz: {exc}") from None
        else:
            images = data
        try:
            images = as_uint8_images(images, str(path))
        except ValueError as exc:
            raise DataError(str(exc)) from None
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
                raise DataError(
                    f"{path}: expected integer labels of shape ({len(images)},), "
                    f"received {labels.dtype} of shape {labels.shape}"
                )
            labels = checked_labels(labels, path)
        return Arrays(images, labels)


def _header(stream):
    """The shape and dtype of the `.npy` array `stream` holds."""
    major, _ = np.lib.format.read_magic(stream)
    read = (np.lib.format.read_array_header_1_0 if major == 1
            else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read(stream)
    return shape, dtype
