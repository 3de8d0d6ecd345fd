"""One registry mechanism for every kind of component.

Components are registered under explicit names, built from mappings
`{name: <registered name>, <arguments>}` whose arguments are checked against
the component's signature first, and listed with glob patterns. Built-ins
come from the package `contrastive.<kind>`; third-party components come from
the entry-point group `contrastive.<kind>` and are imported on first use.

Example:

```python
from contrastive import registry

@registry.register("losses", "my_loss")
class MyLoss(keras.losses.Loss):
    ...

loss = registry.build("losses", {"name": "my_loss", "temperature": 0.2})
```
"""

import dataclasses
import difflib
import fnmatch
import importlib
import inspect
import traceback
import typing

from contrastive import kinds, plugins
from contrastive.errors import RegistryError, SpecError
from contrastive.typecheck import TypeMismatch, check_value, describe, inspect_empty

KINDS = kinds.NAMES
BUILT_IN = "built-in"
# Keras' own bookkeeping arguments, never set from a spec.
ALWAYS_HIDDEN = ("name", "dtype", "reduction", "trainable", "autocast")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One argument of a component, as the spec sees it."""

    name: str
    annotation: object
    default: object
    required: bool

    @property
    def expected(self):
        return describe(self.annotation)


@dataclasses.dataclass
class Entry:
    """A registered or discovered component.

    Attributes:
        kind: the registry kind.
        name: the registered name.
        origin: `"built-in"`, or the distribution that provides it.
        obj: the class or factory, once loaded.
        plugin: the entry point, for components from plugins.
        error: the import error of a plugin that failed to load.
        shadowed_by_builtin: a plugin entry whose name a built-in also uses.
    """

    kind: str
    name: str
    origin: str
    obj: object = None
    plugin: plugins.PluginEntry | None = None
    error: str | None = None
    shadowed_by_builtin: bool = False
    annotations: dict = dataclasses.field(default_factory=dict)
    hidden: tuple = ()

    @property
    def version(self):
        return self.plugin.version if self.plugin else None


class Registry:
    """The components of one kind.

    Args:
        kind: one of `KINDS` (see `contrastive.kinds`); also names the
            built-in package (`contrastive.<kind>`) and the entry-point group
            (`contrastive.<kind>`).
    """

    def __init__(self, kind):
        self.kind = kind
        self.singular = kinds.get(kind).singular
        self._entries = {}
        self._plugins = None
        self._builtins_loaded = False
        self._loading_builtins = False

    # Registration -----------------------------------------------------

    def register(self, name, obj=None, *, override=False, annotations=None, hidden=()):
        """Registers `obj` under `name`; usable as a decorator.

        Keras classes are also registered as Keras serializable objects
        (package `contrastive`), so saved models reload on any backend.

        Args:
            name: the name used in spec files.
            obj: the class or factory. Omit it to use `register` as a
                decorator.
            override: replace an existing component of the same name
                instead of raising `RegistryError`.
            annotations: argument annotations that replace or complete the
                object's own, for classes this project does not own (Keras'
                optimizers, say).
            hidden: arguments not settable from a spec.

        Returns:
            `obj`, or a decorator that registers and returns its argument.
        """
        if obj is None:
            return lambda o: self.register(
                name, o, override=override, annotations=annotations, hidden=hidden
            )
        if not isinstance(name, str) or not name:
            raise RegistryError(
                f"{self.kind}: expected a non-empty string as the name, "
                f"received {name!r}"
            )
        existing = self._entries.get(name)
        if existing is not None and existing.obj is not obj and not override:
            raise RegistryError(
                f"{self.kind}: the name '{name}' is already registered "
                f"(by {existing.origin}: {_qualname(existing.obj)}); pass "
                "override=True to replace it"
            )
        _make_serializable(obj)
        origin = BUILT_IN if _is_builtin(obj) else _top_package(obj)
        self._entries[name] = Entry(
            self.kind,
            name,
            origin,
            obj=obj,
            annotations=dict(annotations or {}),
            hidden=tuple(hidden),
        )
        return obj

    def unregister(self, name):
        """Removes a component registered at run time (tests use this)."""
        self._entries.pop(name, None)

    # Discovery ---------------------------------------------------------

    def _load_builtins(self):
        if self._builtins_loaded or self._loading_builtins:
            return
        self._loading_builtins = True
        try:
            importlib.import_module(f"contrastive.{self.kind}")
        finally:
            self._loading_builtins = False
        self._builtins_loaded = True

    def _plugin_entries(self):
        if self._plugins is None:
            self._plugins = {}
            for ep in plugins.discover(self.kind):
                if ep.name in self._plugins:
                    continue
                self._plugins[ep.name] = Entry(
                    self.kind, ep.name, ep.distribution, plugin=ep
                )
        return self._plugins

    def refresh(self):
        """Forgets discovered plugins, so the next lookup discovers anew."""
        self._plugins = None

    def entries(self, pattern="*"):
        """Returns the entries whose names match the glob `pattern`, sorted.

        Built-ins win over plugins of the same name; such plugins are listed
        with `shadowed_by_builtin=True`. Nothing is imported for plugins.
        """
        self._load_builtins()
        result = []
        for name, entry in self._entries.items():
            if fnmatch.fnmatchcase(name, pattern):
                result.append(entry)
        for name, entry in self._plugin_entries().items():
            if not fnmatch.fnmatchcase(name, pattern):
                continue
            if name in self._entries:
                if self._entries[name].origin == BUILT_IN:
                    entry.shadowed_by_builtin = True
                    result.append(entry)
                continue
            result.append(entry)
        return sorted(result, key=lambda e: (e.name, e.shadowed_by_builtin))

    def names(self, pattern="*"):
        """Returns the usable component names matching `pattern`, sorted."""
        return sorted(
            {e.name for e in self.entries(pattern) if not e.shadowed_by_builtin}
        )

    def entry(self, name, path=""):
        """Returns the `Entry` of `name`, importing a plugin if needed.

        Raises:
            SpecError: the name is unknown (with "did you mean"), or its
                plugin failed to import.
        """
        self._load_builtins()
        entry = self._entries.get(name)
        if entry is None:
            entry = self._plugin_entries().get(name)
        if entry is None:
            known = self.names()
            close = difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            listing = ", ".join(known) if len(known) <= 12 else f"{len(known)} names"
            raise SpecError(
                f"unknown {self.singular} '{name}'{hint} (known: {listing})", path
            )
        if entry.obj is None and entry.plugin is not None:
            self._load_plugin(entry)
        if entry.obj is None:
            raise SpecError(
                f"{self.singular} '{name}' from plugin distribution "
                f"'{entry.origin}' failed to import: {entry.error}",
                path,
            )
        return entry

    def _load_plugin(self, entry):
        try:
            obj = entry.plugin.load()
        except Exception as exc:  # noqa: BLE001 (any failure of third-party code)
            entry.error = _one_line(exc)
            entry.traceback = traceback.format_exc()
            return
        _make_serializable(obj, package=entry.origin)
        entry.obj = obj
        entry.error = None

    def check_plugins(self):
        """Imports every plugin of this kind and records failures.

        `contrastive list` calls it to report broken plugins; normal use
        imports a plugin only when its component is requested.
        """
        for entry in self._plugin_entries().values():
            if entry.obj is None and not entry.shadowed_by_builtin:
                self._load_plugin(entry)

    def get(self, name):
        """Returns the class or factory registered as `name`."""
        return self.entry(name).obj

    # Building ----------------------------------------------------------

    def parameters(self, name):
        """Returns the `Parameter`s a spec may set for component `name`."""
        return _parameters(self.entry(name))

    def check(self, spec, path="", context=()):
        """Validates a component mapping without building it.

        Args:
            spec: `{name: ..., <arguments>}` or a bare name.
            path: the key path of `spec` inside the spec file.
            context: names of arguments that contrastive supplies at build
                time; a spec may not set them.

        Returns:
            `(entry, arguments)`, the arguments checked and typed.

        Raises:
            SpecError: naming the key path, what was expected and what was
                received.
        """
        entry = self.entry(self._name_of(spec, path), _join(path, "name"))
        if isinstance(spec, str):
            spec = {"name": spec}
        params = {p.name: p for p in _parameters(entry)}
        arguments = {}
        for key, value in spec.items():
            if key != "name":
                arguments[key] = self._check_argument(entry.name, params, key, value, path,
                                                      context)
        for param in params.values():
            if param.required and param.name not in arguments and param.name not in context:
                raise SpecError(
                    f"missing required argument '{param.name}' of "
                    f"{self.singular} '{entry.name}' ({param.expected})",
                    path,
                )
        return entry, arguments

    def _name_of(self, spec, path):
        if isinstance(spec, str):
            return spec
        if not isinstance(spec, dict):
            raise SpecError(
                f"expected a mapping with a 'name' key naming one of the "
                f"{self.kind}, received {_received(spec)}",
                path,
            )
        if "name" not in spec:
            raise SpecError(f"expected a 'name' key naming one of the {self.kind}", path)
        if not isinstance(spec["name"], str):
            raise SpecError(
                f"expected a string, received {_received(spec['name'])}", _join(path, "name")
            )
        return spec["name"]

    def _check_argument(self, name, params, key, value, path, context):
        key_path = _join(path, str(key))
        if key in context:
            raise SpecError(
                "is set by contrastive at run time and cannot be given in a spec", key_path)
        if key not in params:
            close = difflib.get_close_matches(str(key), list(params), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            allowed = ", ".join(params) or "no arguments"
            raise SpecError(
                f"unknown argument of {self.singular} '{name}'{hint} "
                f"(expected one of: {allowed})",
                key_path,
            )
        try:
            return check_value(value, params[key].annotation)
        except TypeMismatch as exc:
            raise SpecError(str(exc), key_path) from None

    def build(self, spec, path="", context=None):
        """Checks `spec` and constructs the component.

        Args:
            spec: `{name: ..., <arguments>}` or a bare name.
            path: the key path of `spec` in the spec file, for messages.
            context: arguments contrastive supplies at run time (a
                schedule's total steps, say); each is passed only if the
                component accepts it.

        Returns:
            The constructed component.

        Raises:
            SpecError: the spec does not fit the component, or the
                component rejected a value (`ValueError` in its constructor).
        """
        context = dict(context or {})
        entry, arguments = self.check(spec, path, context)
        accepted = _accepted_names(entry.obj)
        for key, value in context.items():
            if accepted is None or key in accepted:
                arguments[key] = value
        try:
            return entry.obj(**arguments)
        except SpecError as exc:
            raise exc.under(path)
        except ValueError as exc:
            # "argument: problem", the house form, names its key.
            key, sep, problem = _one_line(exc, named=False).partition(": ")
            if sep and key in arguments and key not in context:
                raise SpecError(problem, _join(path, key)) from exc
            raise SpecError(_one_line(exc, named=False), path) from exc
        except TypeError as exc:
            raise SpecError(_one_line(exc), path) from exc


REGISTRIES = {kind: Registry(kind) for kind in KINDS}


def get_registry(kind):
    """Returns the `Registry` of `kind`.

    Raises:
        ComponentError: `kind` is not one of `KINDS`.
    """
    return REGISTRIES[kinds.get(kind).name]


def register(kind, name, obj=None, **kwargs):
    """Registers a component of `kind` under `name`. See `Registry.register`."""
    return get_registry(kind).register(name, obj, **kwargs)


def build(kind, spec, path="", context=None):
    """Builds a component of `kind` from its mapping. See `Registry.build`."""
    return get_registry(kind).build(spec, path, context)


def check(kind, spec, path="", context=()):
    """Validates a component mapping of `kind`. See `Registry.check`."""
    return get_registry(kind).check(spec, path, context)


# Helpers ---------------------------------------------------------------


def _parameters(entry):
    obj = entry.obj
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return []
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # noqa: BLE001 (unresolvable forward references)
        hints = {}
    hints.update(entry.annotations)
    result = []
    params = list(signature.parameters.values())
    if inspect.isclass(obj) and params and params[0].name == "self":
        params = params[1:]
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in entry.hidden or p.name in ALWAYS_HIDDEN:
            continue
        if p.name.startswith("_"):
            continue
        annotation = hints.get(p.name, _infer(p.default))
        required = p.default is inspect.Parameter.empty
        result.append(
            Parameter(p.name, annotation, None if required else p.default, required)
        )
    return result


def _infer(default):
    """An annotation inferred from a default value, for unannotated code."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, int):
        return float | int if default == 0 else int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    return inspect_empty


def _accepted_names(obj):
    """The arguments `obj` names (a `**kwargs` catch-all, which Keras
    classes forward to their base, accepts none of the run-time context)."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return None
    return {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _make_serializable(obj, package="contrastive"):
    if not inspect.isclass(obj) or not hasattr(obj, "get_config"):
        return
    import keras

    registered = keras.saving.get_registered_name(obj)
    if ">" in registered:
        return
    keras.saving.register_keras_serializable(package=package)(obj)


def _is_builtin(obj):
    module = getattr(obj, "__module__", "") or ""
    return module == "contrastive" or module.startswith(("contrastive.", "keras"))


def _top_package(obj):
    module = getattr(obj, "__module__", "") or "unknown"
    return module.split(".")[0]


def _qualname(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', obj)}"


def _join(path, key):
    return f"{path}.{key}" if path else key


def _received(value):
    from contrastive.typecheck import received

    return received(value)


def _one_line(exc, named=True):
    """The first line of `exc`'s message, after its class name (`named`)."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    if not named and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
