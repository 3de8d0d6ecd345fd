"""What training would refuse, found before anything runs: the checks of a
resolved spec against the world (its data sources and its run directory).

`contrastive validate` and `train` run them, so that a spec that validates
does not fail minutes into a run for a reason that could be seen at once.
"""

import pathlib
import tempfile

from contrastive.errors import ContrastiveError, SpecError
from contrastive.registry import build


def check(spec, out=None, resume=False):
    """Checks the data sources and, when given, the run directory `out`.

    Raises:
        SpecError: naming the key path (or `--out`) and the problem.
    """
    image_shape, images = _check_data(spec)
    check_components(spec, image_shape)
    check_schedule(spec, images)
    if out is not None and not resume:
        check_output(out, "--out")
    elif spec.output.dir is not None and not resume:
        check_output(spec.output.dir, "output.dir")


def check_components(spec, image_shape=None):
    """The augmenter, encoder, head and loss accept their arguments, and the
    encoder the views of images of `image_shape` (the training images'
    `(H, W, C)` where `check_data` found it, else None): each is constructed
    as training constructs it (no weights are made), so that what a
    constructor or the encoder's build refuses (a ViT's heads that do not
    divide its width, its patches that do not divide the views) is said
    before a run."""
    augmenter = None
    if spec.augment is not None:
        augmenter = build("augmenters", spec.augment, "augment", {"seed": spec.seed})
    encoder = build("encoders", spec.encoder, "encoder")
    build("heads", spec.head, "head")
    build("losses", spec.loss, "loss")
    check_encoder_input(encoder, augmenter, image_shape or (None, None, 3))


def check_encoder_input(encoder, augmenter, image_shape):
    """The encoder takes the views: those `augmenter` (or, when None, the
    data) gives from images of `image_shape`, `(H, W, C)`; sides may be None
    where unknown, and nothing is checked while the views' sides are.

    A copy of the encoder is built, in a stateless scope whose weights are
    never made, in a thread of its own: Keras' state (layer-name counters,
    the deferred variables) is per thread, and Python's and NumPy's random
    states are put back, so that no later weight or name changes.
    Components that cannot be copied or built this way (no `build`, no
    `compute_output_shape`, another error than ValueError) are left to
    training.

    Raises:
        SpecError: the encoder's build refused the shape with a ValueError
            (a ViT's patch size that does not divide the side, a network's
            minimum side), under `encoder`.
    """
    import random
    import threading

    import keras
    import numpy as np

    try:
        shape = (None, *image_shape)
        if augmenter is not None:
            shape = tuple(augmenter.compute_output_shape(shape))
    except Exception:
        return
    if None in shape[1:] or type(encoder).build is keras.layers.Layer.build:
        return
    refused = []

    def build_a_copy():
        with keras.StatelessScope(initialize_variables=False):
            try:
                type(encoder).from_config(encoder.get_config()).build(shape)
            except ValueError as exc:
                refused.append(str(exc))
            except Exception:
                pass

    states = random.getstate(), np.random.get_state()
    thread = threading.Thread(target=build_a_copy, name="contrastive-encoder-check")
    thread.start()
    thread.join()
    random.setstate(states[0])
    np.random.set_state(states[1])
    if refused:
        raise SpecError(f"{refused[0]} (the views are {shape[1]}x{shape[2]}x{shape[3]})",
                        "encoder")


def check_schedule(spec, images=None):
    """The schedule accepts the run's length (its warmup within the run):
    built as training builds it, where the steps per epoch are known
    (`train.steps_per_epoch`, else from the `images` in the training split)."""
    from contrastive.training.build import build_schedule

    steps = spec.train.steps_per_epoch or (images // spec.train.batch_size if images else None)
    if spec.schedule is not None and steps:
        build_schedule(spec, steps)


def check_data(spec):
    """The training data exists, holds images and at least one batch; its
    other splits (`test`, of the training images' shape) and the held-out
    data (`eval.data`) exist and hold images. Sources that only a download
    or a full decode could count or measure are left to training.

    Returns:
        The training images' `(H, W, C)`, or None where only reading them
        can tell.
    """
    return _check_data(spec)[0]


def _check_data(spec):
    """`check_data`'s checks; returns `(shape, count)` of the training
    images, each None where only reading them can tell."""
    counts, shapes, dataset = _splits(spec.data, "data")
    if counts.get("train") is not None and counts["train"] < spec.train.batch_size:
        raise SpecError(
            f"expected at most the {counts['train']} training images, "
            f"received {spec.train.batch_size}",
            "train.batch_size",
        )
    train, test = shapes.get("train"), shapes.get("test")
    if train is not None and test is not None and tuple(train) != tuple(test):
        raise SpecError(f"expected test images of the training images' shape {tuple(train)}, "
                        f"received {tuple(test)}", "data")
    if "test" in dataset.splits:
        _check_test_classes(dataset)
    if spec.eval.data is not None:
        _splits(spec.eval.data, "eval.data")
    return train, counts.get("train")


def _check_test_classes(dataset):
    """The test split's class names are the training split's, where the
    listings name them (see `same_classes`)."""
    from contrastive.evaluation.data import check_classes

    try:
        train, test = dataset.classes("train"), dataset.classes("test")
    except ContrastiveError as exc:
        raise SpecError(str(exc), "data") from None
    if train and test:
        check_classes(train, test, "data")


def _splits(source, path):
    """`(counts, shapes, dataset)`: of every split of the dataset `source` (under the
    spec key `path`), each None where only reading the images can tell.

    Raises:
        SpecError: a split is missing, unreadable or empty.
    """
    dataset = build("datasets", source, path)
    counts, shapes = {}, {}
    for split in dataset.splits:
        try:
            counts[split], shapes[split] = dataset.count(split), dataset.shape(split)
        except SpecError:
            raise
        except ContrastiveError as exc:
            raise SpecError(str(exc), path) from None
        if counts[split] == 0:
            raise SpecError(f"expected at least one image in the {split} split, found none", path)
    return counts, shapes, dataset


def check_output(out, key):
    """A new run can be created at `out`: it is not a file, not inside a
    file, empty if it exists, and its nearest existing folder is writable."""
    path = pathlib.Path(out)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{path} is a file; expected a directory for the run", key)
    if path.is_dir() and any(path.iterdir()):
        again = (f", or continue the run in it with `contrastive train --resume {path}`"
                 if (path / "spec.yaml").is_file() else "")
        raise SpecError(
            f"{path} already exists and is not empty; choose another --out{again} "
            "(runs are never overwritten)",
            key,
        )
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise SpecError(f"{path}: {existing} is a file, not a folder", key)
    check_writable_folder(existing, path, key)


def check_new_file(out, key="--out", suffixes=None, exact=False):
    """A file can be written at `out` without replacing anything: it does not
    exist, a file can be created in its folder (see `check_writable_folder`),
    and its name ends in one of `suffixes` (when given; in any case unless
    `exact`).

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
    check_writable_folder(path.absolute().parent, path, key)


def check_writable_folder(folder, out, key="--out"):
    """`out` can be written in `folder`: it is an existing folder in which a
    file can be created. One is, and removed at once: permission bits do not
    tell for root, nor for /proc, /sys or a read-only mount.

    Raises:
        SpecError: naming `key` and the problem.
    """
    folder, out = pathlib.Path(folder), pathlib.Path(out)
    if not folder.is_dir():
        raise SpecError(f"expected an existing folder to write {out.name} into, received "
                        f"{str(out)!r}", key)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SpecError(f"{out}: cannot write it, {folder} is not writable "
                        f"({exc.strerror or exc})", key) from None
