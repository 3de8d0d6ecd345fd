"""Test set-up: the backend comes from KERAS_BACKEND (default jax).

From a source checkout the package is importable without installing it:
`src/` is put on the path when `contrastive_momentum` is not installed,
and the methods are registered as their entry points would register them.
"""

import importlib.util
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

if importlib.util.find_spec("contrastive_momentum") is None:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from contrastive.registry import get_registry  # noqa: E402

METHODS = {"moco_v2": "contrastive_momentum.moco:MoCoV2", "byol": "contrastive_momentum.byol:BYOL"}
for _name, _target in METHODS.items():
    if _name not in get_registry("methods").names():
        _module, _object = _target.split(":")
        get_registry("methods").register(_name, getattr(importlib.import_module(_module), _object))
