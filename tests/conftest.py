"""Shared test set-up: the backend comes from KERAS_BACKEND (default jax)."""

import os
import shutil
import tempfile

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# XLA's default optimisation level spends 10-20 s compiling each random
# initialiser on these CPUs; level 0 only changes speed.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

# Folders made for this run (xdist's workers and the processes tests start
# inherit the variables), removed when it ends.
_MADE = []


def _temporary_folder(variable, prefix):
    if variable in os.environ:
        return False
    os.environ[variable] = tempfile.mkdtemp(prefix=prefix)
    _MADE.append(os.environ[variable])
    return True


_temporary_folder("CONTRASTIVE_CACHE_DIR", "contrastive-cache-")
_temporary_folder("CONTRASTIVE_TESTS_SHARED", "contrastive-tests-")  # helpers.built_once
# Tests build the same tiny models again and again: jax compiles each once
# per run (a fifth of the jax suite's time).
if _temporary_folder("JAX_COMPILATION_CACHE_DIR", "contrastive-jax-cache-"):
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


import pytest  # noqa: E402


def pytest_collection_modifyitems(items):
    """Tests marked `heavy` first (handed out one at a time, see
    pyproject.toml), so that the two workers (`-n 2`) end together rather
    than one waiting for the other's long last test."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)


def pytest_unconfigure(config):
    for folder in _MADE:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def backend():
    import keras

    return keras.backend.backend()


@pytest.fixture
def write_spec(tmp_path):
    """Writes a spec mapping to a file of the given suffix; returns its path."""

    def write(data, suffix=".yaml", text=None):
        import json

        import yaml

        path = tmp_path / f"spec{suffix}"
        if text is None:
            if suffix in (".yaml", ".yml"):
                text = yaml.safe_dump(data)
            elif suffix == ".json":
                text = json.dumps(data)
            else:
                import tomli_w

                text = tomli_w.dumps(data)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def tiny_arrays(tmp_path):
    """A small labelled `.npz` of random 16x16 RGB images; returns its path."""
    import numpy as np

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=48).astype(np.int32)
    path = tmp_path / "tiny.npz"
    np.savez(path, images=images, labels=labels)
    np.savez(tmp_path / "tiny_test.npz", images=images[:12], labels=labels[:12])
    return path
