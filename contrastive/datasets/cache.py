"""A cache of decoded images, so that a second run does not decode again."""

import hashlib
import json
import os
import pathlib
import shutil
import tarfile

import numpy as np


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
    (`sizes` None unless stored), or None."""
    path = cache_dir() / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            sizes = data["sizes"] if "sizes" in data.files else None
            return (data["images"], data["labels"], tuple(str(c) for c in data["class_names"]),
                    sizes)
    except (OSError, ValueError, KeyError):
        return None


def store(key, images, labels, class_names, sizes=None):
    """Writes an entry through a temporary file and a rename; a cache that
    cannot be written is skipped silently (it only saves time). `sizes`:
    the images' own sizes on a padded canvas, if any."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp.npz"
        extra = {} if sizes is None else {"sizes": sizes}
        np.savez(tmp, images=images, labels=labels, class_names=np.array(class_names, dtype=str),
                 **extra)
        os.replace(tmp, folder / f"{key}.npz")
    except OSError:
        pass


def load_list(key):
    """Returns the list of strings cached under `key`, or None."""
    try:
        return list(json.loads((cache_dir() / f"{key}.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def store_list(key, items):
    """Caches a list of strings under `key`, as `store` does arrays."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp.json"
        tmp.write_text(json.dumps(list(items)), encoding="utf-8")
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass


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
