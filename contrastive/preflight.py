"""What training would refuse, found before anything runs: the checks of a
resolved spec against the world (its data sources and its run directory).

`contrastive validate` and `train` run them, so that a spec that validates
does not fail minutes into a run for a reason that could be seen at once.
"""

import os
import pathlib

from contrastive.errors import ContrastiveError, SpecError
from contrastive.registry import build


def check(spec, out=None, resume=False):
    """Checks the data sources and, when given, the run directory `out`.

    Raises:
        SpecError: naming the key path (or `--out`) and the problem.
    """
    check_data(spec)
    check_components(spec)
    if out is not None and not resume:
        check_output(out, "--out")
    elif spec.output.dir is not None and not resume:
        check_output(spec.output.dir, "output.dir")


def check_components(spec):
    """The augmenter, encoder, head and loss accept their arguments: each is
    constructed as training constructs it (no weights are made until a
    component is first called), so that what a constructor refuses (a ViT's
    heads that do not divide its width) is said before a run."""
    if spec.augment is not None:
        build("augmenters", spec.augment, "augment", {"seed": spec.seed})
    build("encoders", spec.encoder, "encoder")
    build("heads", spec.head, "head")
    build("losses", spec.loss, "loss")


def check_data(spec):
    """The training data exists, holds images and at least one batch; the
    held-out data (`eval.data`) exists and holds images. Sources that only
    a download or a full decode could count are left to training."""
    count = _count(spec.data, "data")
    if count is not None and count < spec.train.batch_size:
        raise SpecError(
            f"expected at most the {count} training images, received {spec.train.batch_size}",
            "train.batch_size",
        )
    if spec.eval.data is not None:
        _count(spec.eval.data, "eval.data")


def _count(source, path):
    try:
        count = build("datasets", source, path).count("train")
    except SpecError:
        raise
    except ContrastiveError as exc:
        raise SpecError(str(exc), path) from None
    if count == 0:
        raise SpecError("expected at least one image, found none", path)
    return count


def check_output(out, key):
    """A new run can be created at `out`: it is not a file, not inside a
    file, empty if it exists, and its nearest existing folder is writable."""
    path = pathlib.Path(out)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{path} is a file; expected a directory for the run", key)
    if path.is_dir() and any(path.iterdir()):
        raise SpecError(
            f"{path} already exists and is not empty; choose another --out "
            "(runs are never overwritten)",
            key,
        )
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise SpecError(f"{path}: {existing} is a file, not a folder", key)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpecError(f"{path}: cannot create it, {existing} is not writable", key)


def check_new_file(out, key="--out", suffixes=None, exact=False):
    """A file can be written at `out` without replacing anything: it does not
    exist, its folder does and is writable, and its name ends in one of
    `suffixes` (when given; in any case unless `exact`).

    Raises:
        SpecError: naming `key` and the problem.
    """
    path = pathlib.Path(out)
    suffix = path.suffix if exact else path.suffix.lower()
    if suffixes is not None and suffix not in suffixes:
        raise SpecError(f"expected a file name ending in {' or '.join(sorted(suffixes))}, "
                        f"received {str(path)!r}", key)
    if path.exists() or path.is_symlink():
        raise SpecError(f"expected a path that does not exist yet, received {str(path)!r} "
                        "(files are never overwritten)", key)
    folder = path.absolute().parent
    if not folder.is_dir():
        raise SpecError(f"expected an existing folder to write {path.name} into, received "
                        f"{str(path)!r}", key)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpecError(f"{path}: cannot write it, {folder} is not writable", key)
