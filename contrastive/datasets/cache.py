"""A cache of decoded images, so that a second run does not decode again."""

import hashlib
import json
import os
import pathlib

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
    """Returns `(images, labels, class_names)` cached under `key`, or None."""
    path = cache_dir() / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["images"], data["labels"], tuple(str(c) for c in data["class_names"])
    except (OSError, ValueError, KeyError):
        return None


def store(key, images, labels, class_names):
    """Writes an entry through a temporary file and a rename; a cache that
    cannot be written is skipped silently (it only saves time)."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{key}.{os.getpid()}.tmp.npz"
        np.savez(tmp, images=images, labels=labels, class_names=np.array(class_names, dtype=str))
        os.replace(tmp, folder / f"{key}.npz")
    except OSError:
        pass
