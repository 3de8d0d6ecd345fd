"""The dataset contract: `load(split)` returns images and labels as arrays;
datasets read from image files may also list them with `files(split)`, so
that training can stream them instead of holding them in memory."""

import dataclasses
import pathlib

import numpy as np

from contrastive.errors import DataError


@dataclasses.dataclass
class Arrays:
    """Images held in memory.

    Attributes:
        images: uint8 array of shape `(N, H, W, C)`, values 0..255.
        labels: int array of shape `(N,)`, or None when unlabelled.
        class_names: the names of the label values, when known.
        skipped: the unreadable files left out, each with its error.
        sizes: None when every image fills `images`' `(H, W)`; else int32
            `(N, 2)`, each image's `(height, width)` at the top left of the
            zero-padded canvas `images` (images kept at their own aspect
            ratio, see `contrastive.datasets.aspect`).
        view_size: with `sizes`, the side of the deterministic square view
            of each image that `batches` yields (evaluation).
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    class_names: tuple = ()
    skipped: tuple = ()
    sizes: np.ndarray | None = None
    view_size: int | None = None

    def __len__(self):
        return len(self.images)

    @property
    def image_shape(self):
        """`(H, W, C)` of every image (of every view, with `sizes`)."""
        if self.sizes is not None:
            return (self.view_size, self.view_size, self.images.shape[-1])
        return tuple(self.images.shape[1:])

    def take(self, indices):
        """Returns the subset at `indices`."""
        labels = None if self.labels is None else self.labels[indices]
        sizes = None if self.sizes is None else self.sizes[indices]
        return Arrays(self.images[indices], labels, self.class_names, sizes=sizes,
                      view_size=self.view_size)

    def batches(self, batch_size=256):
        """Yields the images in order, as uint8 batches of at most
        `batch_size`; with `sizes`, the centred evaluation view of each
        (`contrastive.datasets.aspect.centre_views`), never the canvas."""
        from contrastive.datasets.aspect import centre_views

        for start in range(0, len(self.images), batch_size):
            images = self.images[start:start + batch_size]
            if self.sizes is not None:
                images = centre_views(images, self.sizes[start:start + batch_size],
                                      self.view_size)
            yield images

    def in_memory(self):
        """These `Arrays` (already decoded)."""
        return self

    def views(self):
        """Every image as evaluation sees it, uint8 `(N, H, W, C)`: `images`,
        or with `sizes` the centred view of each (see `batches`)."""
        if self.sizes is None:
            return self.images
        return np.concatenate(list(self.batches()))


@dataclasses.dataclass
class Files:
    """Image files read as they are needed, each decoded to RGB and resized
    to `size` x `size`, or, with `stored_side`, kept at its aspect ratio.

    Attributes:
        paths: the readable image files, in a fixed order.
        labels: int array of shape `(N,)`, or None when unlabelled.
        size: the side of the decoded images (of the crops and evaluation
            views, with `stored_side`), in pixels.
        class_names: the names of the label values, when known.
        skipped: the unreadable files left out, each with its error.
        stored_side: None squashes every image to `size` x `size`; else
            images keep their aspect ratio: streaming training crops each
            decoded original, evaluation takes its centred view, and
            `in_memory` stores it with this shorter side.
    """

    paths: tuple
    labels: np.ndarray | None
    size: int
    class_names: tuple = ()
    skipped: tuple = ()
    stored_side: int | None = None

    def __len__(self):
        return len(self.paths)

    @property
    def image_shape(self):
        """`(H, W, C)` of every decoded image."""
        return (self.size, self.size, 3)

    def take(self, indices):
        """Returns the subset at `indices`."""
        labels = None if self.labels is None else self.labels[indices]
        return Files(tuple(self.paths[i] for i in indices), labels, self.size, self.class_names,
                     stored_side=self.stored_side)

    def batches(self, batch_size=256):
        """Yields the decoded images in order, as uint8 batches of at most
        `batch_size` (decoded on CPU workers as they are needed); with
        `stored_side`, the centred evaluation view of each."""
        from contrastive.datasets.decode import file_batches

        yield from file_batches(self, batch_size)

    def in_memory(self):
        """The decoded images as `Arrays`."""
        from contrastive.datasets.decode import decode_all

        return decode_all(self)

    @property
    def nbytes(self):
        """The memory the decoded images would take as uint8 (about, for
        aspect-kept images: the canvas depends on their shapes)."""
        side = self.stored_side or self.size
        return len(self.paths) * side * side * 3


class Dataset:
    """Base class of registered datasets.

    Subclasses set `splits` and implement `load(split)`.
    """

    splits = ("train",)

    def load(self, split="train"):
        """Returns the `Arrays` of `split`.

        Raises:
            ValueError: `split` is not one of `self.splits`.
        """
        raise NotImplementedError

    def files(self, split="train", check=True):
        """Returns the `Files` of `split`, for training that streams them.

        Args:
            split: the split.
            check: decode every file once to find the unreadable ones
                (otherwise only list them).

        Raises:
            NotImplementedError: the dataset is not read from image files.
        """
        raise NotImplementedError(
            f"the dataset {type(self).__name__} is not read from image files and "
            "cannot stream; use train.input: memory or device"
        )

    def count(self, split="train"):
        """How many images `split` holds, found cheaply (listing files,
        reading headers) so that a spec can be checked before training; None
        where only `load` can tell.

        Raises:
            DataError: the data source is missing or unreadable.
        """
        del split
        return None

    def shape(self, split="train"):
        """The `(H, W, C)` of the images `load` gives `split`, found as
        cheaply as `count`; None where only `load` can tell.

        Raises:
            DataError: the data source is missing or unreadable.
        """
        del split
        return None

    def classes(self, split="train"):
        """The class names `load` gives `split`'s labels, found as cheaply
        as `count`; None where only `load` can tell, or the labels have no
        names.

        Raises:
            DataError: the data source is missing or unreadable.
        """
        del split
        return None

    @property
    def needs_download(self):
        """Whether `load` would fetch the data from the network."""
        return False

    @property
    def can_stream(self):
        """Whether `files` is implemented."""
        return type(self).files is not Dataset.files

    def check_split(self, split):
        if split not in self.splits:
            raise ValueError(
                f"split: expected one of {', '.join(self.splits)}, received '{split}'"
            )


# Labels are class indices: a model of evaluation has a weight per class.
MAX_CLASSES = 100_000


def checked_labels(values, source):
    """`values` (integers) as int32 class labels.

    Raises:
        DataError: a label below 0 or at least `MAX_CLASSES` (a class
            index so large asks for a classifier of that many outputs).
    """
    if len(values) == 0:
        return np.zeros(0, np.int32)
    low, high = ((values.min(), values.max()) if isinstance(values, np.ndarray)
                 else (min(values), max(values)))
    if low < 0:
        raise DataError(f"{source}: expected labels >= 0, received {low}")
    if high >= MAX_CLASSES:
        raise DataError(f"{source}: expected labels below {MAX_CLASSES} (class indices), "
                        f"received {high}")
    return np.asarray(values, dtype=np.int32)


def not_found(path, what="file"):
    """The `DataError` for a data path that does not exist: "PATH: no such
    WHAT", and for a relative path where it was looked for, since a spec's
    relative paths are read from the current folder, not the spec's."""
    path = pathlib.Path(path)
    where = "" if path.is_absolute() else f" (looked for {path.absolute()})"
    return DataError(f"{path}: no such {what}{where}")


def as_uint8_images(images, source):
    """Returns `images` as uint8 `(N, H, W, 3)`; grayscale is repeated to RGB.

    Args:
        images: an array of shape `(N, H, W)` or `(N, H, W, C)` with C in
            1 or 3; uint8, or floats in [0, 1].
        source: where the images came from, for messages.

    Raises:
        ValueError: saying what was expected and what was received.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(
            f"{source}: expected images of shape (N, H, W) or (N, H, W, C) with "
            f"C 1 or 3, received shape {images.shape}"
        )
    if images.dtype == np.uint8:
        return _rgb(images)
    if np.issubdtype(images.dtype, np.floating):
        if images.size and not np.isfinite(images).all():
            raise ValueError(f"{source}: expected float images in [0, 1], received "
                             f"{np.count_nonzero(~np.isfinite(images))} NaN or infinite values")
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError(
                f"{source}: expected float images in [0, 1], received values in "
                f"[{images.min():g}, {images.max():g}]"
            )
        return _rgb(np.round(images * 255).astype(np.uint8))
    raise ValueError(
        f"{source}: expected uint8 or float images, received dtype {images.dtype}"
    )


def _rgb(images):
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
