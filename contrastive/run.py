"""A run directory as a user reads it: spec, metrics, results, encoder."""

import contextlib
import csv
import json
import pathlib
import zipfile

from contrastive.errors import SpecError

ENCODERS = {"h": "encoder.keras", "head1": "encoder_head1.keras"}


class Run:
    """A pretraining run's directory, read lazily.

    Example:

    ```python
    run = contrastive.Run("runs/digits")
    run.results["eval"]["knn_accuracy"]
    run.metrics[-1]["loss"]
    encoder = run.encoder()          # float32 images in [0, 1] -> h
    ```

    Attributes:
        path: the directory.
        chief: whether the process that trained it wrote it (False on the
            other processes of a multi-process run, which write nothing).
        untouched: True when `resume` found the run finished and wrote
            nothing.
    """

    untouched = False

    def __init__(self, path, chief=True):
        self.path = pathlib.Path(path)
        self.chief = chief

    def __repr__(self):
        return f"Run({str(self.path)!r})"

    def __fspath__(self):
        return str(self.path)

    @property
    def spec(self):
        """The resolved `Spec` the run was trained with (`spec.yaml`).

        Raises:
            SpecError: the directory holds no `spec.yaml`.
        """
        from contrastive.spec import load_spec

        file = self.path / "spec.yaml"
        if not file.exists():
            raise SpecError(f"{self.path}: expected a finished run directory with spec.yaml",
                            "--run")
        return load_spec(file)

    @contextlib.contextmanager
    def data_errors(self):
        """Says a `SpecError` raised inside under the key of the run's data
        (`data`, `eval.data`) with the run's `spec.yaml`, the file that
        names that data."""
        try:
            yield
        except SpecError as exc:
            if exc.path.split(".")[0] == "data" or exc.path.startswith("eval.data"):
                exc.with_file(self.path / "spec.yaml")
            raise

    @property
    def results(self):
        """`results.json` as a dict (empty before the run has finished)."""
        file = self.path / "results.json"
        try:
            return json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SpecError(f"{file}: expected the JSON results of a finished run, received "
                            f"a damaged file ({type(exc).__name__}: {exc}); "
                            f"`contrastive train --resume {self.path}` writes it again",
                            "--run") from None

    @property
    def metrics(self):
        """The rows of `metrics.csv`, one dict per epoch, numbers as floats
        (None where a column has no value that epoch)."""
        try:
            with open(self.path / "metrics.csv", newline="", encoding="utf-8") as f:
                return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]
        except FileNotFoundError:
            return []

    def encoder(self, start="h"):
        """The trained encoder as a Keras model from float32 images in
        [0, 1]: to h (`start="h"`), or to the head's first layer
        (`"head1"`, SimCLR v2's fine-tuning start).

        Raises:
            SpecError: the run has not saved that model.
        """
        file = self.path / ENCODERS[start]
        if not file.exists():
            raise SpecError(f"{self.path}: expected a finished run directory with {file.name}",
                            "--run")
        check_model_file(file)
        return load_encoder(file)


def check_model_file(file, key="--run"):
    """Raises `SpecError` when `file` is no `.keras` zip archive (damaged or
    truncated): Keras would say "File not found" of a file that is there."""
    if not zipfile.is_zipfile(file):
        raise SpecError(f"{file}: expected a Keras model file (a zip archive), received "
                        f"{file.stat().st_size} bytes that are not one (damaged or "
                        "truncated?)", key)


def load_encoder(path):
    """Loads a saved encoder (`encoder.keras`, `encoder_head1.keras`) as a
    Keras model, on any backend.

    The file names contrastive's layer classes, which Keras finds once they
    are registered: this imports them (and the installed plugins' encoders
    and heads), then calls `keras.saving.load_model`. Without it, import
    `contrastive.encoders` and `contrastive.heads` before `load_model`.
    """
    import keras

    from contrastive.registry import get_registry

    for kind in ("encoders", "heads"):
        registry = get_registry(kind)
        for name in registry.names():
            try:
                registry.get(name)
            except Exception:  # noqa: BLE001 (a broken plugin is not this file's)
                continue
    return keras.saving.load_model(path)


def _number(text):
    if text in (None, "", "NA", "nan"):
        return None
    try:
        return float(text)
    except ValueError:
        return text
