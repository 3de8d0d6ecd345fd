"""SavedModel and ONNX exports through Keras' `model.export` on the
TensorFlow backend.

Keras exports a SavedModel natively only on TensorFlow (jax goes through
`jax2tf` into XLA calls, torch needs `torch_xla`), and ONNX through a
different converter per backend. Exporting on TensorFlow in every case
gives one kind of artifact, a plain TensorFlow graph (for ONNX, converted by
`tf2onnx`), whatever backend trained the run: when another backend is
active, a child Python process with `KERAS_BACKEND=tensorflow` loads the
`.keras` file and exports it.

Usage of the child process: `python -m contrastive.export.keras_export
FORMAT ENCODER.keras OUT`.
"""

import importlib.util
import os
import subprocess
import sys

from contrastive.errors import SpecError
from contrastive.files import die_with_parent, written_atomically

KERAS_FORMATS = {"savedmodel": "tf_saved_model", "onnx": "onnx"}
# format -> the modules it needs, with the pip requirement naming each
REQUIREMENTS = {
    "savedmodel": {"tensorflow": "tensorflow-cpu"},
    "onnx": {"tensorflow": "tensorflow-cpu", "tf2onnx": "tf2onnx", "onnx": "onnx"},
}


def installed(module):
    """Whether `module` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def check_requirements(format):
    """Raises `SpecError` on `--format` naming what `format` needs that is
    not installed."""
    missing = {m: pip for m, pip in REQUIREMENTS[format].items() if not installed(m)}
    if missing:
        raise SpecError(
            f"{format} export needs {', '.join(missing)} installed: "
            f"pip install {' '.join(missing.values())}", "--format")


def export_on_tensorflow(format, source, out):
    """Exports the `.keras` encoder `source` to `out` in `format`
    (`"savedmodel"` or `"onnx"`) on the TensorFlow backend.

    Raises:
        SpecError: a requirement is missing.
        RuntimeError: the export failed (the child process's last line).
    """
    import keras

    check_requirements(format)
    with written_atomically(out, replace=False) as tmp:
        if keras.backend.backend() == "tensorflow":
            export_here(format, source, tmp)
            return
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
               "CONTRASTIVE_PARENT": str(os.getpid())}
        result = subprocess.run(
            [sys.executable, "-m", __name__, format, str(source), str(tmp)],
            env=env, capture_output=True, text=True, check=False)
        lines = result.stderr.strip().splitlines()
        if result.returncode == 2 and lines:  # the child's SpecError, its one line
            raise SpecError(lines[-1], "--run")
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
            raise RuntimeError(f"{format} export on the tensorflow backend failed: {lines[-1]}")


def export_here(format, source, out):
    """Loads the `.keras` encoder and exports it on the active backend: one
    input `images` of the saved shape, any batch size."""
    import keras

    from contrastive.run import load_encoder

    model = load_encoder(source, "--run")
    (images,) = model.inputs
    signature = [keras.InputSpec(shape=images.shape, dtype=images.dtype, name="images")]
    model.export(str(out), format=KERAS_FORMATS[format], input_signature=signature,
                 verbose=False)


if __name__ == "__main__":
    if "CONTRASTIVE_PARENT" in os.environ:  # no orphan writing after its parent was killed
        die_with_parent(int(os.environ["CONTRASTIVE_PARENT"]))
    try:
        export_here(*sys.argv[1:4])
    except SpecError as exc:  # the encoder file: the parent says it in one line
        print(exc.message, file=sys.stderr)
        sys.exit(2)
