"""Images named in a list file: one path a line, or a CSV with labels."""

import csv
import pathlib
from typing import Literal

from contrastive.datasets.base import Files, not_found
from contrastive.datasets.image_folder import EXTENSIONS, ImageFolder, class_labels
from contrastive.errors import DataError
from contrastive.registry import register
from contrastive.typecheck import PathText, PositiveInt


@register("datasets", "file_list")
class FileList(ImageFolder):
    """JPEG and PNG images named in a list file.

    `path` is a `.txt` file with one image path a line (unlabelled), or a
    `.csv` file whose header names a `path` column and, optionally, a
    `label` column (class names or integers; sorted into class indices;
    labels need at least two classes).
    Relative paths are relative to the list file's folder; blank lines and
    lines starting with `#` are skipped. Images are decoded, resized and
    reported as `image_folder` does them, and cached alike.

    Args:
        path: the list of training images.
        size: the side of the images, in pixels.
        test_path: the list of held-out images (split `test`).
        on_error: what to do with unreadable files.
        cache: keep the decoded images (see `image_folder`).
        keep_aspect: keep each image's aspect ratio (see `image_folder`).
        stored_side: the shorter side of stored aspect-kept images (see
            `image_folder`).
    """

    def __init__(
        self,
        path: PathText,
        size: PositiveInt = 32,
        test_path: PathText | None = None,
        on_error: Literal["skip", "fail"] = "skip",
        cache: bool = True,
        keep_aspect: bool = False,
        stored_side: PositiveInt | None = None,
    ):
        super().__init__(path, size=size, test_path=test_path, on_error=on_error, cache=cache,
                         keep_aspect=keep_aspect, stored_side=stored_side)

    def _class_folders(self, split):
        """`(list file, class name of each image it names)` of `split`."""
        self.check_split(split)
        root = self._list(split)
        return root, read_list(root)[1]

    def files(self, split="train", check=True):
        self.check_split(split)
        paths, names = read_list(self._list(split))
        unreadable = self._unreadable(paths) if check else []
        bad = [f"{path} ({error})" for path, error in unreadable]
        if bad:
            self._report(bad)
            dropped = {path for path, _ in unreadable}
            keep = [i for i, item in enumerate(paths) if str(item) not in dropped]
            paths, names = [paths[i] for i in keep], [names[i] for i in keep]
        labels, classes = class_labels(names, self.labels, self._list(split))
        return Files(tuple(paths), labels, self.size, classes, skipped=tuple(bad),
                     stored_side=self.stored_side)

    def _list(self, split):
        root = pathlib.Path(self.test_path if split == "test" else self.path)
        if not root.is_file():
            raise not_found(root, "list file")
        return root

    def _read(self, root):
        paths, names = read_list(root)
        named = [(str(item), name, item) for item, name in zip(paths, names, strict=True)]
        return self._decode(root, named, lambda item: item.read_bytes())

    def _sources(self, root):
        return [root, *read_list(root)[0]]


def read_list(path):
    """`(paths, class names)` of a list file (names "" without labels).

    Raises:
        DataError: the file cannot be read, a CSV lacks a `path` column, some
            rows have labels and others not, it names no image, or a file it
            names does not exist.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the list: {exc}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(line for line in text.splitlines() if line.strip()))
        if rows and "path" not in rows[0]:
            raise DataError(f"{path}: expected a CSV header with a 'path' column, received "
                            f"{', '.join(rows[0])}")
        entries = [(row["path"].strip(), str(row.get("label") or "").strip()) for row in rows]
    else:
        entries = [(line.strip(), "") for line in text.splitlines()
                   if line.strip() and not line.lstrip().startswith("#")]
    if not entries:
        raise DataError(f"{path}: names no image")
    if len({name == "" for _, name in entries}) > 1:
        raise DataError(f"{path}: expected a label on every row or on none")
    paths = [_resolve(path.parent, item) for item, _ in entries]
    odd = [str(p) for p in paths if not p.name.lower().endswith(EXTENSIONS)]
    if odd:
        raise DataError(f"{path}: expected {'/'.join(EXTENSIONS)} files, received {odd[0]}")
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{path}: {len(missing)} of the {len(paths)} files it names do not "
                        f"exist (the first: {missing[0]})")
    return paths, [name for _, name in entries]


def _resolve(folder, item):
    candidate = pathlib.Path(item)
    return candidate if candidate.is_absolute() else folder / candidate
