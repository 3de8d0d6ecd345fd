"""Images in one sub-folder per class, from a folder or a tar archive."""

import concurrent.futures
import os
import pathlib
import tarfile
import warnings
from typing import Literal

import numpy as np

from contrastive.datasets import cache
from contrastive.datasets.aspect import (
    MAX_ASPECT,
    pad_to_canvas,
    resolve_stored_side,
)
from contrastive.datasets.base import Arrays, Dataset, Files, not_found
from contrastive.datasets.pil_decode import decode_bytes, reason
from contrastive.errors import DataError
from contrastive.registry import register
from contrastive.typecheck import PathText, PositiveInt

EXTENSIONS = (".jpg", ".jpeg", ".png")


@register("datasets", "image_folder")
class ImageFolder(Dataset):
    """JPEG and PNG images, in one sub-folder per class or unlabelled.

    `path` is a folder `<class>/<image>` or a `.tar`, `.tar.gz` or `.tgz`
    archive whose members are `.../<class>/<image>`, labelled by class
    folder; or a folder of images with no class folders (an archive whose
    images share one folder), unlabelled, as self-supervised data usually
    is (evaluation then needs `eval.data`). Images are converted to RGB and
    resized to `size` x `size` (bilinear) where they differ.

    Unreadable files (truncated, not an image) are reported with their
    paths; with `on_error: skip` they are left out, with `on_error: fail`
    loading stops before training starts. A file that fails once training
    streams it is skipped whatever `on_error` says (see `StreamInput`).

    Args:
        path: the training images.
        size: the side of the images, in pixels.
        test_path: held-out images of the same form (split `test`).
        limit_per_class: take at most this many images of each class (the
            first ones in sorted order), for quick runs.
        on_error: what to do with unreadable files.
        labels: `auto` (labelled by class folder when there are at least
            two, else unlabelled), `folders` or `none`.
        cache: keep the decoded images (see `contrastive.datasets.cache`),
            keyed by the files' paths, sizes and times and these settings.
            When training streams the files (`train.input: stream`), the
            list of unreadable files is kept instead, and an archive is
            extracted there once.
        keep_aspect: keep each image's aspect ratio instead of squashing it
            to a square: in memory (`train.input: memory`, `device`) each is
            stored with its shorter side `stored_side` (the longer side at
            most 3 times that; a wider image is stored smaller) on a padded
            canvas with its own `(height, width)` (`Arrays.sizes`), and the
            random resized crop draws its box in the image's own geometry
            and resizes only the crop to `size`; `stream` crops each decoded
            original on its CPU workers. Evaluation takes the centred square
            of 0.875 of the shorter side, resized to `size` (the official
            evaluation crop).
        stored_side: the shorter side of stored aspect-kept images;
            default `size / 0.875` (256 for 224), so that the evaluation
            view needs no resizing.
    """

    def __init__(
        self,
        path: PathText,
        size: PositiveInt = 32,
        test_path: PathText | None = None,
        limit_per_class: PositiveInt | None = None,
        on_error: Literal["skip", "fail"] = "skip",
        labels: Literal["auto", "folders", "none"] = "auto",
        cache: bool = True,
        keep_aspect: bool = False,
        stored_side: PositiveInt | None = None,
    ):
        self.path = path
        self.keep_aspect = keep_aspect
        self.stored_side = resolve_stored_side(keep_aspect, stored_side, size)
        self.labels = labels
        self.size = size
        self.test_path = test_path
        self.limit_per_class = limit_per_class
        self.on_error = on_error
        self.cache = cache
        self.splits = ("train", "test") if test_path else ("train",)
        self._listings = {}

    def load(self, split="train"):
        root = self._root(split)
        key = None
        if self.cache:
            settings = {"size": self.size, "limit": self.limit_per_class, "format": 2}
            if self.keep_aspect:
                settings.update(stored_side=self.stored_side, max_aspect=MAX_ASPECT)
            key = cache.fingerprint(self._sources(root), settings)
            hit = cache.load(key)
            if hit is not None and (hit[3] is not None) == self.keep_aspect:
                return Arrays(*hit[:3], sizes=hit[3], view_size=self._view_size)
        arrays = self._read(root)
        if key is not None and not arrays.skipped:
            cache.store(key, arrays.images, arrays.labels, arrays.class_names, arrays.sizes)
        return arrays

    @property
    def _view_size(self):
        return self.size if self.keep_aspect else None

    def shape(self, split="train"):
        self.check_split(split)
        return (self.size, self.size, 3)

    def count(self, split="train"):
        return len(self._listing(split)[1])

    def classes(self, split="train"):
        """The class names of `split`, sorted (as `load` numbers them), from
        the listing; None for unlabelled images."""
        root, names = self._listing(split)
        return class_labels(names, self.labels, root)[1] or None

    def _listing(self, split):
        """`_class_folders(split)`, listed once for `count` and `classes`."""
        if split not in self._listings:
            self._listings[split] = self._class_folders(split)
        return self._listings[split]

    def _root(self, split):
        """The folder or archive of `split`.

        Raises:
            DataError: it does not exist, or a folder above it cannot be read.
        """
        self.check_split(split)
        root = pathlib.Path(self.test_path if split == "test" else self.path)
        try:
            found = root.exists()
        except OSError as exc:
            raise _unlisted(root, self._arg(root), exc) from None
        if not found:
            raise not_found(root, "file or folder")
        return root

    def _arg(self, root):
        """The argument that names `root`, for messages: `path` or `test_path`."""
        return "test_path" if self.test_path and root == pathlib.Path(self.test_path) else "path"

    def _class_folders(self, split):
        """`(root, class folder of each image load would read)` of `split`,
        from the folder's or the archive's listing."""
        root = self._root(split)
        if root.is_dir():
            items = self._limit(_folder_items(root, self._arg(root)),
                                lambda item: _class_of(item, root))
            return root, [_class_of(item, root) for item in items]
        if root.name.endswith((".tar", ".tar.gz", ".tgz")):
            try:
                with tarfile.open(root) as archive:
                    names = sorted(m.name for m in archive.getmembers()
                                   if m.isfile() and m.name.lower().endswith(EXTENSIONS))
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise DataError(f"{root}: cannot read the archive: {exc}") from None
            return root, [_member_class(name) for name in self._limit(names, _member_class)]
        raise DataError(f"{root}: expected a folder of images or a .tar.gz archive")

    def _sources(self, root):
        """The files whose paths, sizes and times key the decoded cache."""
        return _folder_items(root, self._arg(root)) if root.is_dir() else [root]

    def files(self, split="train", check=True):
        """Returns the `Files` of `split`, for streaming.

        A `.tar.gz` archive is extracted into the cache folder first. With
        `check`, every file is decoded once (the result is cached) and the
        unreadable ones are reported as `load` reports them.
        """
        root = self._root(split)
        if root.is_dir():
            items, base = _folder_items(root, self._arg(root)), root
        elif root.name.endswith((".tar", ".tar.gz", ".tgz")):
            base = cache.extracted(root)
            items = sorted(p for p in base.rglob("*")
                           if p.is_file() and p.name.lower().endswith(EXTENSIONS))
        else:
            raise DataError(f"{root}: expected a folder of images or a .tar.gz archive")
        items = self._limit(items, lambda item: _class_of(item, base))
        if not items:
            raise DataError(f"{root}: no {'/'.join(EXTENSIONS)} images")
        unreadable = self._unreadable(items) if check else []
        bad = [f"{path} ({error})" for path, error in unreadable]
        if bad:
            dropped = {path for path, _ in unreadable}
            if all(str(item) in dropped for item in items):
                raise DataError(f"{root}: none of the {len(items)} images could be read "
                                f"(the first: {bad[0]})")
            self._report(bad)
            items = [item for item in items if str(item) not in dropped]
        labels, classes = class_labels([_class_of(item, base) for item in items], self.labels,
                                       root)
        return Files(tuple(items), labels, self.size, classes, skipped=tuple(bad),
                     stored_side=self.stored_side)

    def _unreadable(self, items):
        from contrastive.datasets.decode import unreadable

        key = None
        if self.cache:
            key = cache.fingerprint(items, {"size": self.size, "check": 1})
            hit = cache.load_list(key, valid=_path_error_pairs)
            if hit is not None:
                return hit
        bad = unreadable(items, self.size)
        if key is not None:
            cache.store_list(key, bad)
        return bad

    def _report(self, bad):
        listing = "; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else "")
        if self.on_error == "fail":
            raise DataError(f"{len(bad)} unreadable image(s): {listing}")
        warnings.warn(f"skipped {len(bad)} unreadable image(s): {listing}", stacklevel=3)

    def _read(self, root):
        if root.is_dir():
            items = self._limit(_folder_items(root, self._arg(root)),
                                lambda item: _class_of(item, root))
            named = [(str(item), _class_of(item, root), item) for item in items]
            return self._decode(root, named, lambda item: item.read_bytes())
        if root.is_file() and root.name.endswith((".tar", ".tar.gz", ".tgz")):
            return self._from_tar(root)
        raise DataError(f"{root}: expected a folder of images or a .tar.gz archive")

    def _limit(self, items, class_of):
        if self.limit_per_class is None:
            return items
        counts, kept = {}, []
        for item in items:
            name = class_of(item)
            if counts.get(name, 0) < self.limit_per_class:
                counts[name] = counts.get(name, 0) + 1
                kept.append(item)
        return kept

    def _from_tar(self, root):
        try:
            with tarfile.open(root) as archive:
                members = archive.getmembers()
                images = sorted(
                    (m for m in members if m.isfile() and m.name.lower().endswith(EXTENSIONS)),
                    key=lambda m: m.name,
                )
                images = self._limit(images, lambda m: _member_class(m.name))
                wanted = {m.name for m in images}
                # In archive order, so that a compressed stream is read once.
                blobs = {
                    m.name: archive.extractfile(m).read() for m in members if m.name in wanted
                }
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{root}: cannot read the archive: {exc}") from None
        named = [
            (f"{root}:{m.name}", _member_class(m.name), m.name)
            for m in images
        ]
        return self._decode(root, named, blobs.__getitem__)

    def _decode(self, root, named, read):
        if not named:
            raise DataError(f"{root}: no {'/'.join(EXTENSIONS)} images")

        def decode(entry):
            shown, _, key = entry
            try:
                data = read(key)
            except Exception as exc:  # noqa: BLE001 (any unreadable file)
                return None, f"{shown} ({reason(exc)})"
            image, why = decode_bytes(data, self.size, self.stored_side if self.keep_aspect else None)
            return image, None if why is None else f"{shown} ({why})"

        from contrastive.evaluation.progress import Progress

        progress = Progress(f"decoding {len(named)} images from {root}", len(named), None,
                            unit_name="image")
        workers = min(8, os.cpu_count() or 1)
        decoded = []
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for result in pool.map(decode, named):
                decoded.append(result)
                progress.add(1)
        bad = [error for _, error in decoded if error]
        keep = [i for i, (image, _) in enumerate(decoded) if image is not None]
        if not keep:
            raise DataError(f"{root}: none of the {len(named)} images could be read"
                            + (f" (the first: {bad[0]})" if bad else ""))
        if bad:
            self._report(bad)
        labels, classes = class_labels([named[i][1] for i in keep], self.labels, root)
        if self.keep_aspect:
            images, sizes = pad_to_canvas([decoded[i][0] for i in keep])
            return Arrays(images, labels, classes, skipped=tuple(bad), sizes=sizes,
                          view_size=self.size)
        images = np.stack([decoded[i][0] for i in keep])
        return Arrays(images, labels, classes, skipped=tuple(bad))


def class_labels(names, mode, source):
    """Labels from per-image class names: `(labels, class_names)`, or
    `(None, ())` unlabelled.

    Args:
        names: one class name per image; "" for an image outside any class
            folder.
        mode: `auto` (labelled when there are at least two classes and no
            image outside them), `folders` or `none`.
        source: where the images came from, for messages.

    Raises:
        DataError: `folders` asked of images outside class folders, or
            images both in and outside class folders.
    """
    classes = tuple(sorted(set(names)))
    if mode == "none" or (mode == "auto" and len(classes) < 2 and "" in classes):
        return None, ()
    if "" in classes:
        raise DataError(f"{source}: expected every image in a class folder (or none, for "
                        "unlabelled data), received images both in and outside class folders")
    if mode == "auto" and len(classes) < 2:
        return None, ()
    index = {cls: i for i, cls in enumerate(classes)}
    return np.array([index[name] for name in names], dtype=np.int32), classes


def _folder_items(root, arg):
    """The files at the top of `root` and in its sub-folders, sorted (a file
    that is not an image is reported as unreadable).

    Raises:
        DataError: a folder cannot be listed; `arg` names `root` in messages.
    """
    try:
        top = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
        class_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError as exc:
        raise _unlisted(root, arg, exc) from None
    nested = []
    for class_dir in class_dirs:
        try:
            nested.extend(sorted(p for p in class_dir.iterdir() if p.is_file()))
        except OSError as exc:
            raise _unlisted(class_dir, f"a class folder of {arg}", exc) from None
    return top + nested


def _unlisted(folder, what, exc):
    """The `DataError` for a folder that cannot be listed (permission denied)."""
    return DataError(f"{folder}: expected a folder that can be read ({what}), received "
                     f"{type(exc).__name__}: {exc.strerror or exc}")


def _path_error_pairs(items):
    """Whether `items` is a list of `[path, error]` string pairs, as
    `_unreadable` caches them."""
    return all(isinstance(item, list) and len(item) == 2
               and all(isinstance(part, str) for part in item) for item in items)


def _member_class(name):
    """The class folder of an archive member (the folder it is in)."""
    return pathlib.PurePosixPath(name).parent.name


def _class_of(item, root):
    """The class folder of an image under `root` ("" at the top)."""
    return "" if item.parent == root else item.parent.name
