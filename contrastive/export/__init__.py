"""Exporting a run's encoder (float32 images in [0, 1] to h) for other
runtimes.

| format | writes | loads with |
| --- | --- | --- |
| `keras` | a copy of `encoder.keras` | `contrastive.load_encoder(path)` |
| `savedmodel` | a TensorFlow SavedModel directory | `tf.saved_model.load(path).serve(images)` |
| `onnx` | an ONNX file (dynamic batch) | `onnxruntime.InferenceSession(path)` |
| `torchvision` | a PyTorch state dict of a ResNet in torchvision's layout | `torchvision.models.resnetNN().load_state_dict(...)`, see `export.torch_resnet` |

`savedmodel` and `onnx` are written by Keras' own `model.export` on the
TensorFlow backend, whatever backend trained the run or runs the export (in
a child process when the active backend is another): a plain TensorFlow
graph, converted to ONNX by `tf2onnx`.

Example:

```python
exported = contrastive.export_encoder("runs/digits", "onnx", "encoder.onnx")
exported.path, exported.notes
```
"""

import dataclasses
import pathlib
import shutil

from contrastive.errors import SpecError
from contrastive.files import written_atomically
from contrastive.preflight import check_new_file

FORMATS = ("keras", "savedmodel", "onnx", "torchvision")


@dataclasses.dataclass(frozen=True)
class Exported:
    """What `export_encoder` wrote.

    Attributes:
        path: the file or directory written.
        format: one of `FORMATS`.
        notes: lines telling how to load it, where more than the format's
            loader is needed (torchvision's ResNets).
    """

    path: pathlib.Path
    format: str
    notes: tuple = ()


def export_encoder(run, format, out):
    """Writes the encoder of a finished run in `format` to `out`.

    Args:
        run: a `contrastive.Run` or a run directory holding `encoder.keras`.
        format: one of `FORMATS`.
        out: the path to write; it must not exist yet. A `keras` export
            must end in `.keras`.

    Returns:
        An `Exported` record.

    Raises:
        SpecError: an unknown format, an existing `out`, a run without an
            encoder, an encoder the format cannot hold, or a missing
            dependency (one line each).
    """
    from contrastive.run import ENCODERS, Run, check_model_file

    if format not in FORMATS:
        raise SpecError(f"expected one of {', '.join(FORMATS)}, received {format!r}", "--format")
    out = pathlib.Path(out)
    check_new_file(out, "--out")
    run = run if isinstance(run, Run) else Run(run)
    source = run.path / ENCODERS["h"]
    if not source.is_file():
        raise SpecError(f"{run.path}: expected a finished run directory with {source.name}",
                        "--run")
    check_model_file(source)
    return _EXPORTERS[format](source, out)


def _keras(source, out):
    if out.suffix != ".keras":
        raise SpecError(f"expected a file name ending in .keras, received {str(out)!r}", "--out")
    with written_atomically(out, replace=False) as tmp:
        shutil.copyfile(source, tmp)
    return Exported(out, "keras")


def _savedmodel(source, out):
    from contrastive.export.keras_export import export_on_tensorflow

    export_on_tensorflow("savedmodel", source, out)
    return Exported(out, "savedmodel")


def _onnx(source, out):
    from contrastive.export.keras_export import export_on_tensorflow

    export_on_tensorflow("onnx", source, out)
    return Exported(out, "onnx")


def _torchvision(source, out):
    from contrastive.export import torch_resnet
    from contrastive.run import load_encoder

    notes = torch_resnet.save(load_encoder(source), out)
    return Exported(out, "torchvision", tuple(notes))


_EXPORTERS = {"keras": _keras, "savedmodel": _savedmodel, "onnx": _onnx,
              "torchvision": _torchvision}
