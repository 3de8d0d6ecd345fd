"""Test set-up: the backend comes from KERAS_BACKEND (default jax).

From a source checkout the package is importable without installing it:
`src/` is put on the path when `contrastive_wideresnet` is not installed.
"""

import importlib.util
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if importlib.util.find_spec("contrastive_wideresnet") is None:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))
