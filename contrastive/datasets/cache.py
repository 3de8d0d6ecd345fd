"""A cache of decoded images, so that a second run does not decode again."""

import hashlib
import json
import os
import pathlib
import shutil
import tarfile
import warnings
import zipfile

import numpy as np

from contrastive.files import written_atomically


def cache_dir():
    """`$CONTRASTIVE_CACHE_DIR`, else `~/.cache/contrastive/decoded`."""
    root = os.environ.get("CONTRASTIVE_CACHE_DIR")
    if root:
        return pathlib.Path(root)
    return pathlib.Path.home() / ".cache" / "contrastive" / "decoded"


def fingerprint(sources, settings):
    """A key from the sources' paths, sizes and modification times and the
    decoding settings: any change to either gives a new key."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in sources:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def load(key):
    """Returns `(images, labels, class_names, sizes)` cached under `key`
    (`labels` None unless stored, as `sizes`), or None.

    An entry that cannot be read (truncated, not an archive, arrays of
    other shapes) is a miss, said in a warning: the caller builds it again
    and `store` replaces it.
    """
    path = cache_dir() / f"{key}.npz"
    try:
        # np.load leaves a file it opened open when the archive is damaged.
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as data:
            images, class_names = data["images"], data["class_names"]
            labels = data["labels"] if "labels" in data.files else None
            sizes = data["sizes"] if "sizes" in data.files else None
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        _damaged(path, f"{type(exc).__name__}: {exc}")
        return None
    if images.ndim != 4 or images.dtype != np.uint8 or class_names.ndim != 1 \
            or (labels is not None and labels.ndim != 1) \
            or (sizes is not None and sizes.shape != (len(images), 2)):
        _damaged(path, f"arrays of other shapes than written: images {images.dtype} "
                       f"{images.shape}")
        return None
    return images, labels, tuple(str(c) for c in class_names), sizes


def store(key, images, labels, class_names, sizes=None):
    """Writes an entry through a temporary file and a rename; a cache that
    cannot be written is skipped silently (it only saves time). `labels`:
    None for unlabelled images; `sizes`: the images' own sizes on a padded
    canvas, if any."""
    folder = cache_dir()
    extra = {} if sizes is None else {"sizes": sizes}
    if labels is not None:
        extra["labels"] = labels
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with written_atomically(folder / f"{key}.npz") as tmp:
            np.savez(tmp, images=images, class_names=np.array(class_names, dtype=str), **extra)
    except OSError:
        pass


def load_list(key, valid=None):
    """Returns the list cached under `key`, or None.

    Args:
        key: the entry's key.
        valid: says whether a cached list has the shape the caller wrote;
            one it refuses, or an entry that is no JSON list, is a miss,
            said in a warning.
    """
    path = cache_dir() / f"{key}.json"
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _damaged(path, f"{type(exc).__name__}: {exc}")
        return None
    if not isinstance(items, list) or (valid is not None and not valid(items)):
        _damaged(path, f"a {type(items).__name__} of another shape than the one written")
        return None
    return items


def store_list(key, items):
    """Caches `items`, a list JSON can hold, under `key`, as `store` does
    arrays."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with written_atomically(folder / f"{key}.json") as tmp:
            tmp.write_text(json.dumps(list(items)), encoding="utf-8")
    except OSError:
        pass


def _damaged(path, reason):
    """Warns that the cache entry `path` cannot be used (a miss)."""
    warnings.warn(f"{path}: ignored a damaged cache entry ({' '.join(reason.split())}); "
                  "it is built again", stacklevel=3)


def extracted(archive):
    """The folder `archive` (a tar file) is extracted to, under the cache
    folder; extracted on first use, through a temporary folder renamed
    into place, so that an interrupted extraction is never taken for a
    whole one.

    Raises:
        DataError: the archive cannot be read or the folder written.
    """
    from contrastive.errors import DataError

    target = cache_dir() / "extracted" / fingerprint([archive], {"extract": 1})
    if target.is_dir():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        os.replace(tmp, target)
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if target.is_dir():
            return target
        raise DataError(f"{archive}: cannot extract the archive: {exc}") from None
    return target
