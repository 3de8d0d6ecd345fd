"""Encoders and heads saved to `.keras` on one backend load on another.

Each backend's run saves a small ResNet-18 with an MLP head on its own backend
and loads it in a subprocess on the next one: jax -> torch, torch ->
tensorflow, tensorflow -> jax. The outputs h and z must agree to float32
tolerance.
"""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from contrastive.registry import build

NEXT = {"jax": "torch", "torch": "tensorflow", "tensorflow": "jax"}
ROOT = pathlib.Path(__file__).resolve().parents[1]

LOAD = """
import sys
import numpy as np
import keras
import contrastive.encoders, contrastive.heads  # registers the classes
model = keras.saving.load_model(sys.argv[1])
x = np.load(sys.argv[2])
encoder = [l for l in model.layers if l.__class__.__name__ == "ResNet18"][0]
assert encoder.get_config()["cifar_stem"] is False, encoder.get_config()
out = model.predict(x, verbose=0)
np.savez(sys.argv[3], h=np.asarray(out["h"]), z=np.asarray(out["z"]),
         backend=keras.backend.backend())
"""


def small_model(side):
    encoder = build(
        "encoders", {"name": "resnet18", "base_width": 8, "zero_init_residual": False}
    )
    head = build("heads", {"name": "mlp", "num_layers": 3, "output_dim": 16})
    inputs = keras.Input((side, side, 3))
    h = encoder(inputs)
    return keras.Model(inputs, {"h": h, "z": head(h)})


def randomise(model, rng):
    """Random values for every weight, batch-norm statistics included."""
    for variable in model.weights:
        value = rng.standard_normal(variable.shape).astype("float32") * 0.2
        if "variance" in variable.path or "gamma" in variable.path:
            value = 0.5 + np.abs(value)
        variable.assign(value)


@pytest.mark.heavy
def test_saved_on_this_backend_loads_on_the_next(backend, tmp_path):
    rng = np.random.default_rng(0)
    side = 40  # > 32: the ImageNet stem (7x7 stride 2, max-pool), odd sizes later
    model = small_model(side)
    randomise(model, rng)
    x = rng.random((2, side, side, 3), dtype=np.float32)
    expected = model.predict(x, verbose=0)
    path = tmp_path / f"resnet_{backend}.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    target = NEXT[backend]
    env = {**os.environ, "KERAS_BACKEND": target, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD, str(path), str(tmp_path / "x.npy"),
         str(tmp_path / "out.npz")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = np.load(tmp_path / "out.npz")
    assert str(loaded["backend"]) == target
    for key in ("h", "z"):
        want = keras.ops.convert_to_numpy(expected[key])
        np.testing.assert_allclose(loaded[key], want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_round_trip_on_the_same_backend(tmp_path):
    rng = np.random.default_rng(1)
    model = small_model(16)
    randomise(model, rng)
    x = rng.random((2, 16, 16, 3), dtype=np.float32)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras")
    encoder = restored.layers[1]
    assert encoder.get_config()["cifar_stem"] is True  # resolved at build, saved
    got = restored.predict(x, verbose=0)
    for key in ("h", "z"):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(got[key]), keras.ops.convert_to_numpy(expected[key]),
            rtol=1e-6, atol=1e-6,
        )
