"""Spec builders and data locations shared by tests."""

import os
import pathlib
import shutil

ROOT = pathlib.Path(__file__).resolve().parents[1]
# CIFAR-10 beside the checkout (never a run-time dependency of the library).
CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10"
CIFAR_TRAIN = CIFAR / "cifar10-train.tar.gz"
CIFAR_TEST = CIFAR / "cifar10-test.tar.gz"


def tiny_spec(arrays_path, **sections):
    """A spec that trains in seconds on `tiny_arrays`."""
    spec = {
        "seed": 1,
        "data": {"name": "arrays", "path": str(arrays_path),
                 "test_path": str(arrays_path.parent / "tiny_test.npz")},
        "augment": None,
        "encoder": {"name": "small_cnn", "widths": [8, 8]},
        "head": {"name": "mlp", "output_dim": 8},
        "loss": {"name": "nt_xent", "temperature": 0.5},
        "optimizer": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
        "train": {"batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "verbose": 0},
        "eval": {"knn": {"k": 5}, "linear": {"epochs": 2}},
    }
    spec.update(sections)
    return spec


def built_once(name, build):
    """A folder that `build(folder)` fills once per test run, shared by
    xdist's workers (a module fixture that installs or trains is otherwise
    built by each worker that runs one of its tests); returns it.

    The run's folder is `CONTRASTIVE_TESTS_SHARED`, made and removed by
    conftest.py. A build that fails leaves nothing: the next caller builds
    again.
    """
    try:
        import fcntl
    except ImportError:  # Windows: each worker builds its own
        fcntl, name = None, f"{name}-{os.getpid()}"
    parent = pathlib.Path(os.environ["CONTRASTIVE_TESTS_SHARED"])
    folder = parent / name
    with open(parent / f"{name}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            try:
                build(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            (folder / ".built").touch()
    return folder
