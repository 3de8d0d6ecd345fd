"""contrastive: SimCLR as a Keras 3 framework of pluggable components.

The Python interface in five names: `load_spec`, `train`, `evaluate`,
`build` and `SimCLR` (with `Run`, what `train` returns). Importing
`contrastive` imports neither Keras nor a backend; they load on first use.

>>> import contrastive
>>> spec = contrastive.load_spec("examples/digits.yaml", overrides=[
...     "train.epochs=1", "schedule.warmup=0", "train.verbose=0",
...     "eval.linear.epochs=5", "output.plot=false", "output.tensorboard=false"])
>>> spec.train.batch_size, spec.encoder["name"]
(256, 'small_cnn')
>>> run = contrastive.train(spec, out=tmp / "digits", log=lambda line: None)
>>> sorted(run.results["eval"])
['knn_accuracy', 'knn_top5_accuracy', 'linear_accuracy']
>>> run.metrics[-1]["epoch"]
0.0
>>> report = contrastive.evaluate(run, "knn", k=10)
>>> report["k"], report["test"], 0.0 <= report["accuracy"] <= 1.0
(10, 359, True)
>>> head = contrastive.build("heads", {"name": "mlp", "output_dim": 32})
>>> head.output_dim
32
"""

__version__ = "0.1.0"

from contrastive.errors import ComponentError, ContrastiveError, SpecError  # noqa: E402
from contrastive.registry import KINDS, build, get_registry, register  # noqa: E402
from contrastive.spec import Spec, load_spec  # noqa: E402

# Names whose modules import Keras, loaded when first used.
_LAZY = {
    "train": "contrastive.training",
    "resume": "contrastive.training",
    "evaluate": "contrastive.evaluation",
    "SimCLR": "contrastive.model",
    "Run": "contrastive.run",
    "load_encoder": "contrastive.run",
    "export_encoder": "contrastive.export",
}

__all__ = [
    "KINDS",
    "ComponentError",
    "ContrastiveError",
    "Run",
    "SimCLR",
    "Spec",
    "SpecError",
    "build",
    "evaluate",
    "export_encoder",
    "get_registry",
    "load_encoder",
    "load_spec",
    "register",
    "resume",
    "train",
    "__version__",
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'contrastive' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
