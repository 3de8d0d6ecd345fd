"""A run directory as a user reads it: spec, metrics, results, encoder."""

import contextlib
import csv
import json
import pathlib
import re
import zipfile
import zlib

from contrastive.errors import SpecError

ENCODERS = {"h": "encoder.keras", "head1": "encoder_head1.keras"}

# What `keras.saving.load_model` raises of a file it cannot read or rebuild:
# a damaged member, JSON or HDF5, or a config naming a class it cannot find.
UNLOADABLE = (OSError, EOFError, ValueError, TypeError, KeyError, zipfile.BadZipFile,
              zlib.error)
# The packages whose classes Keras imports by module, registered or not.
KERAS_PACKAGES = ("keras", "keras_hub", "keras_cv", "keras_nlp")


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
            SpecError: the run has not saved that model, or its file is
                damaged (see `load_encoder`).
        """
        file = self.path / ENCODERS[start]
        if not file.exists():
            raise SpecError(f"{self.path}: expected a finished run directory with {file.name}",
                            "--run")
        return load_encoder(file, "--run")


def check_model_file(file, key="--run"):
    """Checks, without building it, that `file` is a `.keras` model file
    that `load_encoder` can load: a zip archive (Keras would say "File not
    found" of a damaged one), with a JSON `config.json` and weights that
    HDF5 can open, whose layer classes are registered.

    Raises:
        SpecError: naming `file` and what is wrong with it.
    """
    file = pathlib.Path(file)
    if not file.is_file():
        raise SpecError(f"{file}: no such file", key)
    if not zipfile.is_zipfile(file):
        raise SpecError(f"{file}: expected a Keras model file (a zip archive), received "
                        f"{file.stat().st_size} bytes that are not one (damaged or "
                        "truncated?)", key)
    try:
        with zipfile.ZipFile(file) as archive:
            config = _read_members(archive)
    except UNLOADABLE as exc:
        raise SpecError(f"{file}: expected a Keras model file, received a damaged one "
                        f"({_reason(exc)})", key) from exc
    missing = _unregistered(config)
    if missing:
        raise SpecError(f"{file}: expected layer classes registered by installed packages, "
                        f"received {', '.join(missing)}, which none registers (install the "
                        f"plugin that provides {'it' if len(missing) == 1 else 'them'})", key)


def load_encoder(path, key=""):
    """Loads a saved encoder (`encoder.keras`, `encoder_head1.keras`) as a
    Keras model, on any backend.

    The file names contrastive's layer classes, which Keras finds once they
    are registered: this imports them (and the installed plugins' encoders
    and heads), then calls `keras.saving.load_model`. Without it, import
    `contrastive.encoders` and `contrastive.heads` before `load_model`.

    Args:
        path: the `.keras` file (or what `keras.saving.load_model` reads
            besides: an unzipped save's folder, an `hf://` address, loaded
            without the file checks).
        key: the option that named it, for messages (`--run`).

    Raises:
        SpecError: the file is damaged, or names a layer class that no
            installed package registers (see `check_model_file`).
    """
    import keras

    if "://" in str(path) or pathlib.Path(path).is_dir():  # hf://..., an unzipped save
        _import_components()
    else:
        check_model_file(path, key)
    try:
        return keras.saving.load_model(path)
    except UNLOADABLE as exc:
        raise SpecError(f"{path}: expected a Keras model file, received one Keras cannot "
                        f"rebuild ({_reason(exc)})", key) from exc


def _read_members(archive):
    """`config.json` of a `.keras` archive, parsed, once its weights
    member is found and, for HDF5, opens."""
    import h5py

    config = json.loads(archive.read("config.json"))
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"config.json holds a {type(config).__name__}, not a model's config")
    names = archive.namelist()
    if "model.weights.h5" in names:
        with archive.open("model.weights.h5") as member, h5py.File(member, "r"):
            pass
    elif "model.weights.npz" not in names:
        raise KeyError("no model.weights.h5 in the archive")
    return config


def _unregistered(config):
    """The registered names (`package>Class`) that `config` refers to and no
    imported package has registered with Keras, each with its module."""
    import keras

    _import_components()
    missing = set()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
            name, module = node.get("registered_name"), node.get("module")
            if (isinstance(name, str) and ">" in name and isinstance(module, str)
                    and module.split(".")[0] not in KERAS_PACKAGES
                    and keras.saving.get_registered_object(name) is None):
                missing.add(f"{name} (module {module})")
    return sorted(missing)


def _import_components():
    """Imports contrastive's and the installed plugins' encoders and heads,
    which registers their layer classes with Keras."""
    from contrastive.registry import get_registry

    for kind in ("encoders", "heads"):
        registry = get_registry(kind)
        for name in registry.names():
            try:
                registry.get(name)
            except Exception:  # noqa: BLE001 (a broken plugin is not this file's)
                continue


def _reason(exc):
    """What Keras, h5py or json said, in one short line: the innermost
    message of a wrapped one, without the configs Keras appends."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    if "Exception encountered:" in text:
        text = text.rsplit("Exception encountered:", 1)[1]
    text = re.split(r"\s*(?:Full object config|config=)", text, maxsplit=1)[0]
    text = " ".join(text.split()).rstrip(".")
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _number(text):
    if text in (None, "", "NA", "nan"):
        return None
    try:
        return float(text)
    except ValueError:
        return text
