"""Spec files: reading, command-line overrides, validation and resolution.

A spec is a mapping with the sections below. Component sections are
`{name: <registered name>, <arguments>}`; the others have fixed keys (see the
dataclasses in this module). Every problem raises `SpecError` naming the
file, the key path, what was expected and what was received.
"""

import copy
import dataclasses
import difflib
import json
import pathlib
import re
import sys
import tomllib
import typing
from typing import Annotated, Literal

import yaml

from contrastive import kinds
from contrastive.errors import SpecError
from contrastive.registry import get_registry
from contrastive.typecheck import (
    NonNegativeInt,
    PathText,
    PositiveFloat,
    PositiveInt,
    Range,
    Seed,
    TypeMismatch,
    check_value,
    received,
)

MAX_DEPTH = 32  # nesting deeper than any spec needs; deeper is refused
# Values, YAML aliases expanded (a few aliases nested deep expand to
# billions), and bytes of a spec file: far more than any spec needs.
MAX_VALUES = 100_000
MAX_BYTES = 10**7
# Python turns no integer of more digits into text (nor text into one).
_LONG_INTEGER = (f"expected an integer of at most {sys.get_int_max_str_digits()} digits, "
                 "received a longer one")
# A million epochs, a billion steps an epoch: more than any run, fewer than
# would overflow a step counter or run for ever unnoticed.
Epochs = Annotated[int, Range(1, 10**6)]
StepsPerEpoch = Annotated[int, Range(1, 10**9)]


class SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-4` as a number as YAML 1.2 does
    (YAML 1.1 wants `1.0e-4` and would give the string "1e-4"), and
    refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, its keys overridable
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: PyYAML reports it below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None,
                    f"duplicate key '{key}' (first on line {first})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)

    def flatten_mapping(self, node):
        # Merge keys copy the merged pairs each time: nested, they multiply
        # as aliases do, in the node itself, before any value is counted.
        super().flatten_mapping(node)
        if len(node.value) > MAX_VALUES:
            raise yaml.constructor.ConstructorError(
                None, None, f"expected at most {MAX_VALUES:,} values, received "
                f"{len(node.value):,} keys once merge keys (<<) are expanded", node.start_mark)


SpecLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text):
    """Parses YAML text with the safe `SpecLoader`."""
    return yaml.load(text, Loader=SpecLoader)  # noqa: S506 (a SafeLoader subclass)


@dataclasses.dataclass
class TrainSection:
    """`train:` how pretraining runs.

    Attributes:
        batch_size: source images per step (each gives two views).
        epochs: passes over the training data.
        steps_per_epoch: steps per epoch; null takes every full batch.
        precision: Keras dtype policy of the encoder and head.
        jit_compile: compile the train step (`auto`: Keras' choice).
        verbose: Keras' progress display (0 silent, 1 bar, 2 a line an epoch).
        probe: an online linear probe on stop-gradient h during pretraining,
            when the data has labels (as the official code does).
        input: how images reach the model (see `contrastive.inputs`):
            `memory` (host memory, a batch copied each step), `device`
            (held in device memory, batched there), `stream` (read from the
            files by tf.data as training goes), or `auto`.
    """

    batch_size: PositiveInt = 256
    epochs: Epochs = 10
    steps_per_epoch: StepsPerEpoch | None = None
    precision: Literal["float32", "mixed_bfloat16", "mixed_float16"] = "float32"
    jit_compile: bool | Literal["auto"] = "auto"
    verbose: Literal[0, 1, 2] = 1
    probe: bool = True
    input: Literal["auto", "memory", "device", "stream"] = "auto"


@dataclasses.dataclass
class DistributeSection:
    """`distribute:` how the run is spread over devices.

    Attributes:
        strategy: `none` for one device; the others belong to the
            distribution layer.
        devices: how many devices; null takes all (several tensorflow
            workers, under TF_CONFIG, use all theirs: null or their total).
        sync_batchnorm: batch-norm statistics over the global batch.
        gather_negatives: negatives from every device.
    """

    strategy: Literal["none", "auto", "data_parallel", "mirrored", "ddp"] = "none"
    devices: PositiveInt | None = None
    sync_batchnorm: bool = True
    gather_negatives: bool = True


@dataclasses.dataclass
class KnnSection:
    """`eval.knn:` weighted kNN on the frozen representation h.

    Attributes:
        enabled: run it after pretraining.
        k: neighbours.
        temperature: weight of a neighbour is exp(similarity / temperature).
    """

    enabled: bool = True
    k: PositiveInt = 200
    temperature: PositiveFloat = 0.1


@dataclasses.dataclass
class LinearSection:
    """`eval.linear:` logistic regression on the frozen representation h.

    Attributes:
        enabled: run it after pretraining.
        epochs: passes over the labelled training features.
        learning_rate: Adam's learning rate.
        batch_size: features per step.
        augment: train the classifier on h of a new random crop and flip
            of each training image every epoch, through the frozen encoder
            (the paper's linear evaluation, appendix B.6); about `epochs`
            more forward passes over the training split, held in memory.
            False: h of the unchanged images, computed once.
    """

    enabled: bool = True
    epochs: Epochs = 100
    learning_rate: PositiveFloat = 1e-3
    batch_size: PositiveInt = 256
    augment: bool = False


@dataclasses.dataclass
class EvalSection:
    """`eval:` evaluation of the representation h after pretraining.

    Attributes:
        data: the labelled held-out dataset (a component mapping); null uses
            the `test` split of `data`.
        knn: see `KnnSection`.
        linear: see `LinearSection`.
        monitor_every: a kNN measurement on the held-out data every this
            many epochs of pretraining (0: none).
        baselines: evaluate the same way, beside h, the raw pixels (when an
            image has at most 16,384 values) and a randomly initialised
            encoder of the same architecture: what pretraining added.
    """

    data: dict | None = None
    monitor_every: NonNegativeInt = 0
    baselines: bool = True
    knn: KnnSection = dataclasses.field(default_factory=KnnSection)
    linear: LinearSection = dataclasses.field(default_factory=LinearSection)


@dataclasses.dataclass
class OutputSection:
    """`output:` where the run goes.

    Attributes:
        dir: the run directory; `--out` replaces it. Null gives a new
            `runs/<spec name>-<date>-<time>` each run.
        save_encoder: write the trained encoder as `encoder.keras`.
        checkpoint_every: epochs between checkpoints (and after the last).
        tensorboard: write TensorBoard logs (needs TensorFlow installed).
        plot: write `curves.png` of the metrics.
    """

    dir: PathText | None = None
    save_encoder: bool = True
    checkpoint_every: PositiveInt = 1
    tensorboard: bool = True
    plot: bool = True


SECTIONS = {
    "train": TrainSection,
    "distribute": DistributeSection,
    "eval": EvalSection,
    "output": OutputSection,
}
DEFAULTS = {
    "seed": 0,
    "augment": {"name": "simclr"},
    "head": {"name": "mlp"},
    "loss": {"name": "nt_xent"},
    "method": {"name": "simclr"},
    "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9},
    "schedule": None,
}
REQUIRED = ("data", "encoder")
TOP_LEVEL = ("seed", *kinds.sections(), *SECTIONS)


class Spec:
    """A validated spec, every section present and defaults filled in.

    Component sections (`data`, `augment`, `encoder`, `head`, `loss`,
    `optimizer`, `schedule`) are mappings `{name: ..., <arguments>}` (or
    None where the spec turned the component off); the fixed sections are
    the typed dataclasses of this module.

    Attributes:
        file: the file it was read from (or `"<spec>"`).
        seed: the run's seed.
        train: `TrainSection`.
        distribute: `DistributeSection`.
        eval: `EvalSection`.
        output: `OutputSection`.
    """

    def __init__(self, mapping, file="<spec>", overridden=()):
        self._mapping = mapping
        self.file = file
        self.overridden = frozenset(overridden)
        self.seed = mapping["seed"]
        for section in kinds.sections():
            setattr(self, section, mapping.get(section))
        for section, schema in SECTIONS.items():
            setattr(self, section, _typed(schema, mapping[section]))

    def source_of(self, path):
        """Where the value at key path `path` came from: `"--set"` when an
        override set it (or a section above or below it), else `file`."""
        return "--set" if _overridden(path, self.overridden) else self.file

    def blame(self, error):
        """`error` (a SpecError) with the file its key path came from."""
        return error.with_file(self.source_of(error.path))

    def __getitem__(self, key):
        """The resolved mapping of section `key` (plain dicts and lists)."""
        return self._mapping[key]

    def as_dict(self):
        """The resolved spec as a plain mapping (a copy)."""
        return copy.deepcopy(self._mapping)

    def to_yaml(self):
        return yaml.safe_dump(self._mapping, sort_keys=False)

    def __repr__(self):
        return f"Spec(file={self.file!r})"


def _typed(schema, mapping):
    """The dataclass `schema` filled from a resolved section mapping."""
    hints = typing.get_type_hints(schema)
    values = {}
    for field in dataclasses.fields(schema):
        value = mapping.get(field.name)
        if dataclasses.is_dataclass(hints[field.name]) and isinstance(value, dict):
            value = _typed(hints[field.name], value)
        values[field.name] = value
    return schema(**values)


def read_file(path):
    """Reads a YAML, TOML or JSON spec file into a mapping.

    Raises:
        SpecError: the file is missing, unreadable or malformed; the message
            gives the line and column where the parser stopped.
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    try:
        exists = path.exists()
    except OSError as exc:  # a folder above it that cannot be entered (Python < 3.14)
        raise SpecError(f"cannot read the file: {exc}", file=str(path)) from None
    if not exists:
        raise SpecError("no such file", file=str(path))
    if suffix not in (".toml", ".json", ".yaml", ".yml"):
        raise SpecError(f"expected a .yaml, .yml, .toml or .json file, received '{path.suffix}'",
                        file=str(path))
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise SpecError(f"expected a spec file of at most {MAX_BYTES:,} bytes, "
                            "received a longer one", file=str(path))
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the file: {exc}", file=str(path)) from None
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix == ".json":
            data = json.loads(text, object_pairs_hook=_unique_json_keys)
        else:
            data = load_yaml(text)
    except RecursionError:
        raise SpecError(f"nested deeper than {MAX_DEPTH} levels", file=str(path)) from None
    except SpecError as exc:  # a duplicate JSON key: name its lines
        key = exc.message.split("'")[1]
        lines = [str(i) for i, line in enumerate(text.splitlines(), 1) if f'"{key}"' in line]
        where = f"lines {', '.join(lines)}: " if lines else ""
        raise SpecError(where + exc.message, file=str(path)) from None
    except yaml.YAMLError as exc:
        raise SpecError(_yaml_message(exc, "YAML"), file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"malformed TOML: {exc}", file=str(path)) from None
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"line {exc.lineno}, column {exc.colno}: malformed JSON: {exc.msg}",
            file=str(path),
        ) from None
    except ValueError as exc:  # a value's converter's (an integer's, a date's)
        raise SpecError(_value_message(exc, text), file=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(
            f"expected a mapping of sections at the top level, received {received(data)}",
            file=str(path),
        )
    try:
        check_tree(data)
    except SpecError as exc:
        raise exc.with_file(path) from None
    return data


def _unique_json_keys(pairs):
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise SpecError(f"duplicate key '{key}' in one object")
    return dict(pairs)


def check_tree(value, path=""):
    """Raises SpecError where `value` nests deeper than `MAX_DEPTH`, holds
    more than `MAX_VALUES` values once YAML's aliases are expanded, or holds
    (as a value or a key) an integer of more digits than Python turns into
    text (a YAML `0x...` one: decimal ones stop the parser)."""
    values = _count_values(value, 0, {})
    if values > MAX_VALUES:
        raise SpecError(f"expected at most {MAX_VALUES:,} values, received {values:,} "
                        "(YAML aliases expanded)", path)
    _check_values(value, path, 0)


def _count_values(value, depth, counted):
    """The values in `value`, its own included, counting each use of a
    shared (aliased) one; every object is counted once (`counted`)."""
    if depth > MAX_DEPTH or not isinstance(value, dict | list):
        return 1  # too deep: `_check_values` says where
    if id(value) not in counted:
        items = value.values() if isinstance(value, dict) else value
        counted[id(value)] = 1 + sum(_count_values(item, depth + 1, counted)
                                     for item in items)
    return counted[id(value)]


def _check_values(value, path, depth):
    if depth > MAX_DEPTH:
        raise SpecError(f"nested deeper than {MAX_DEPTH} levels", path)
    if isinstance(value, int) and not _printable(value):
        raise SpecError(_LONG_INTEGER, path)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, int) and not _printable(key):
                raise SpecError(f"{_LONG_INTEGER} as a key", path)
            _check_values(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_values(item, f"{path}[{index}]", depth + 1)


def _printable(number):
    try:
        str(number)
    except ValueError:
        return False
    return True


def _value_message(exc, text=None):
    """The message of a ValueError that a parser's conversion of a value
    raised: an integer of more digits than Python reads (on the line of
    `text` where it is, when given), or a value such as a date that does
    not exist."""
    if "integer string conversion" not in str(exc):
        return f"cannot read a value: {exc}"
    found = re.search(rf"\d[\d_]{{{sys.get_int_max_str_digits()},}}", text or "")
    if found is None:
        return _LONG_INTEGER
    line = text.count("\n", 0, found.start()) + 1
    return f"line {line}: {_LONG_INTEGER}"


def _yaml_message(exc, what):
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}malformed {what}: {problem}"


def apply_overrides(data, overrides):
    """Applies `KEY.PATH=VALUE` overrides (values typed as YAML) in place.

    A mapping given for a key that holds a mapping is merged into it (so
    `--set train={epochs: 1}` keeps the section's other keys), unless it
    names another component (`name`), which then replaces it whole.

    Returns:
        The set of overridden key paths.

    Raises:
        SpecError: an override is not `KEY=VALUE`, its value is not YAML, or
            it descends into a value that is not a mapping.
    """
    paths = set()
    for item in overrides or ():
        key, value = _parse_override(item)
        parts = key.split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                # An absent section merges into its default (not a `null`
                # one, which turned it off), unless another component is named.
                default = node is data and part not in node and parts[i + 1:] != ["name"]
                child = node[part] = _default_section(part) if default else {}
            if not isinstance(child, dict):
                raise SpecError(
                    f"expected a mapping to set '{'.'.join(parts[i + 1:])}' in, "
                    f"received {received(child)}",
                    ".".join(parts[: i + 1]),
                    file="--set",
                )
            node = child
        old = node.get(parts[-1])
        if node is data and parts[-1] not in node:
            old = _default_section(parts[-1])
        node[parts[-1]] = _merged(old, value)
        paths.add(key)
    return paths


def _default_section(section):
    """What a spec without `section` uses, as a mapping `--set` can merge
    into (`--set optimizer.learning_rate=0.5` keeps the default optimizer)."""
    default = DEFAULTS.get(section)
    return copy.deepcopy(default) if isinstance(default, dict) else {}


def _parse_override(item):
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(f"expected KEY.PATH=VALUE, received {received(item)}", file="--set")
    if "" in (part.strip() for part in key.split(".")):
        raise SpecError(f"malformed key '{key}': expected names joined by '.', "
                        "e.g. train.epochs", file="--set")
    if not raw.strip():  # an empty shell variable, most likely: `null` says none
        raise SpecError("expected a value after '=', received none (write null for none)",
                        key, file="--set")
    return key, load_value(raw, key, "--set")


def load_value(text, key="", option="--set"):
    """A YAML value given on the command line (`--set KEY=...`, `--data`),
    checked as a spec file's values are.

    Raises:
        SpecError: malformed YAML or a value no spec may hold, under `key`
            and named after `option`.
    """
    try:
        value = load_yaml(text)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        raise SpecError(_override_message(exc), key, file=option) from None
    try:
        check_tree(value, key)
    except SpecError as exc:
        raise exc.with_file(option) from None
    return value


def _override_message(exc):
    if isinstance(exc, yaml.YAMLError):
        return _yaml_message(exc, "YAML value")
    if isinstance(exc, RecursionError):
        return f"nested deeper than {MAX_DEPTH} levels"
    return _value_message(exc)


def _merged(old, new):
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    if "name" in new and new["name"] != old.get("name"):
        return new
    merged = dict(old)
    for key, value in new.items():
        merged[key] = _merged(old.get(key), value)
    return merged


def load_spec(source, overrides=()):
    """Reads, overrides and validates a spec.

    Args:
        source: a `.yaml`, `.yml`, `.toml` or `.json` file, a mapping of
            sections, or a `Spec` (returned as it is, or resolved again with
            `overrides`).
        overrides: `KEY.PATH=VALUE` strings, as given to `--set`.

    Returns:
        A `Spec`.

    Raises:
        SpecError: naming the file (or `--set`), the key path and the problem.
    """
    if isinstance(source, Spec):
        if not overrides:
            return source
        return resolve(source.as_dict(), overrides, file=source.file)
    if isinstance(source, dict):
        return resolve(source, overrides)
    return resolve(read_file(source), overrides, file=str(source))


def resolve(data, overrides=(), file="<spec>"):
    """Validates a spec mapping and fills in defaults. See `load_spec`."""
    data = copy.deepcopy(data)
    overridden = apply_overrides(data, overrides)
    try:
        return Spec(_resolve(data), file, overridden)
    except SpecError as exc:
        raise exc.with_file("--set" if _overridden(exc.path, overridden) else file)


def _overridden(path, overridden):
    """Whether an override set key path `path`, a section above it or a key
    below it."""
    return bool(path) and any(
        path == p or path.startswith(p + ".") or p.startswith(path + ".") for p in overridden)


def _resolve(data):
    for key in data:
        if key not in TOP_LEVEL:
            raise _unknown(key, TOP_LEVEL, "")
    for key in REQUIRED:
        if data.get(key) is None:
            raise SpecError(f"missing required section '{key}'", key)
    resolved = {}
    try:
        resolved["seed"] = check_value(data.get("seed", DEFAULTS["seed"]), Seed)
    except TypeMismatch as exc:
        raise SpecError(str(exc), "seed") from None
    for kind in kinds.ALL:
        value = data.get(kind.section, DEFAULTS.get(kind.section))
        if value is None:
            resolved[kind.section] = None
            continue
        resolved[kind.section] = resolve_component(kind.name, value, kind.section, kind.context)
    for section, schema in SECTIONS.items():
        resolved[section] = resolve_section(schema, data.get(section), section)
    eval_data = resolved["eval"].get("data")
    if eval_data is not None:
        resolved["eval"]["data"] = resolve_component("datasets", eval_data, "eval.data")
    return resolved


def resolve_component(kind, value, path, context=()):
    """Checks a component mapping and returns it with defaults filled in."""
    registry = get_registry(kind)
    entry, arguments = registry.check(value, path, context)
    result = {"name": entry.name}
    for param in registry.parameters(entry.name):
        if param.name in context:
            continue
        if param.name in arguments:
            result[param.name] = _plain(arguments[param.name])
        elif not param.required and _representable(param.default):
            result[param.name] = _plain(param.default)
    return result


def resolve_section(schema, value, path):
    """Checks a fixed-key section against its dataclass; fills in defaults."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise SpecError(f"expected a mapping, received {received(value)}", path)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    hints = typing.get_type_hints(schema, include_extras=True)
    result = {}
    for key, item in value.items():
        if key not in fields:
            raise _unknown(key, list(fields), path)
    for name, field in fields.items():
        key_path = f"{path}.{name}"
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            result[name] = resolve_section(annotation, value.get(name), key_path)
            continue
        if name in value:
            try:
                result[name] = _plain(check_value(value[name], annotation))
            except TypeMismatch as exc:
                raise SpecError(str(exc), key_path) from None
        elif field.default is not dataclasses.MISSING:
            result[name] = field.default
        else:
            result[name] = None
    return result


def _unknown(key, allowed, path):
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    key_path = f"{path}.{key}" if path else str(key)
    return SpecError(
        f"unknown key{hint} (expected one of: {', '.join(allowed)})", key_path
    )


def _representable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_representable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _representable(v) for k, v in value.items())
    return False


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
