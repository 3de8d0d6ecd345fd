'''`contrastive new-plugin`: writes a ready-to-install plugin distribution.

The skeleton uses only the public plugin interface: an entry point in the
group `contrastive.<kind>`, a component following the contract of its kind
(annotated constructor arguments, `get_config`, Keras ops only), and a test
that builds the component through the registry (so it checks the install)
and exercises it on the active backend. Layout, for `new-plugin
contrastive-foo --kind losses`:

    contrastive-foo/
        pyproject.toml              entry point "contrastive.losses": foo
        README.md
        src/contrastive_foo/__init__.py
        src/contrastive_foo/loss.py
        tests/test_contrastive_foo.py

`pip install ./contrastive-foo` and `contrastive list losses` shows `foo`
with its distribution. The templates are files of this package
(`contrastive/templates/plugin/`, `string.Template` syntax: `$name` is
substituted, `$$` is a dollar). Nothing here imports Keras.
'''

import dataclasses
import importlib.resources
import keyword
import pathlib
import re
import string

from contrastive import kinds
from contrastive.errors import SpecError
from contrastive.preflight import check_writable_folder

KINDS = kinds.NAMES
_DIST_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$|^[A-Za-z]$")
_COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class PluginNames:
    """The names derived from a distribution name.

    Attributes:
        distribution: the distribution (pip) name, as given.
        package: the import package, e.g. `contrastive_foo`.
        component: the name used in spec files, e.g. `foo`.
        class_name: the component's Python class, e.g. `Foo`.
        kind: the registry kind.
        module: the module inside the package holding the component.
    """

    distribution: str
    package: str
    component: str
    class_name: str
    kind: str
    module: str


def plugin_names(name, kind="losses", component=None):
    """Derives package, component and class names from `name`.

    Raises:
        SpecError: `name`, `kind` or `component` is not usable.
    """
    if kind not in KINDS:
        raise SpecError(f"--kind: expected one of {', '.join(KINDS)}, received '{kind}'")
    if not isinstance(name, str) or not _DIST_NAME.match(name):
        raise SpecError(
            "NAME: expected a distribution name of letters, digits, '-', '_' "
            f"and '.', starting with a letter, received '{name}'"
        )
    package = re.sub(r"[-_.]+", "_", name).lower()
    if keyword.iskeyword(package):
        raise SpecError(f"NAME: '{package}' is a Python keyword; choose another name")
    if component is None:
        component = package.removeprefix("contrastive_") or package
    if not _COMPONENT_NAME.match(component):
        raise SpecError(
            "--component: expected lower-case letters, digits and '_', starting "
            f"with a letter, received '{component}'"
        )
    class_name = "".join(part.capitalize() for part in component.split("_") if part)
    if keyword.iskeyword(class_name) or not class_name.isidentifier():
        class_name = "Plugin" + class_name
    return PluginNames(name, package, component, class_name, kind, kinds.get(kind).singular)


def write_plugin(name, kind="losses", out=None, component=None, check_builtins=True):
    """Writes the skeleton of a plugin distribution; returns its directory.

    Args:
        name: the distribution name (`contrastive-foo`).
        kind: the registry kind of its one component.
        out: the directory to create; default `./<name>`.
        component: the component's name in spec files; default the name
            without `contrastive-`, with `_` for `-`.
        check_builtins: refuse a component name a built-in already uses
            (the built-in would win). Imports the built-ins of `kind`.

    Returns:
        `(directory, PluginNames)`.

    Raises:
        SpecError: a bad name, a name a built-in uses, an `out` that exists
            and is not empty (nothing is overwritten), or one that cannot be
            created (a file where a folder is needed, a folder not writable).
    """
    names = plugin_names(name, kind, component)
    root = pathlib.Path(out) if out is not None else pathlib.Path(name)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SpecError(
            f"--out: {root} already exists and is not empty; choose another "
            "directory (nothing is overwritten)"
        )
    check_writable_folder(_nearest_existing(root), root, "--out")
    if check_builtins:
        _refuse_built_in(kind, names.component)
    values = {
        "distribution": names.distribution,
        "package": names.package,
        "component": names.component,
        "class_name": names.class_name,
        "kind": names.kind,
        "module": names.module,
        "section": kinds.get(kind).section,
    }
    for relative, text in _files(names).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(text).substitute(values), encoding="utf-8")
    return root, names


def _nearest_existing(path):
    """`path` itself where it exists, else its nearest existing parent."""
    path = path.absolute()
    return next(p for p in (path, *path.parents) if p.exists())


def _refuse_built_in(kind, component):
    from contrastive.registry import BUILT_IN, get_registry

    registry = get_registry(kind)
    if any(e.origin == BUILT_IN for e in registry.entries(component)):
        raise SpecError(
            f"the {registry.singular} name '{component}' is a built-in, "
            "which would win over the plugin; choose another NAME or --component"
        )


def _files(names):
    """Each file's path in the distribution and its template text; a test
    file is its kind's template around the parts every kind shares."""
    shared = {"docstring": template("tests/_docstring.py.tmpl"),
              "common": template("tests/_common.py.tmpl").rstrip("\n")}
    test = template(f"tests/{names.kind}.py.tmpl")
    for part, value in shared.items():
        test = test.replace(f"${part}\n", value + "\n")
    return {
        "pyproject.toml": template("pyproject.toml.tmpl"),
        "README.md": template("README.md.tmpl"),
        f"src/{names.package}/__init__.py": template("__init__.py.tmpl"),
        f"src/{names.package}/{names.module}.py": template(f"components/{names.kind}.py.tmpl"),
        f"tests/test_{names.package}.py": test,
    }


def template(name):
    """The text of the plugin template `name` (relative to
    `contrastive/templates/plugin/`)."""
    folder = importlib.resources.files("contrastive") / "templates" / "plugin"
    return (folder / name).read_text(encoding="utf-8")
