"""Discovery of third-party components through Python entry points.

A plugin distribution declares, in its `pyproject.toml`:

    [project.entry-points."contrastive.losses"]
    vicreg = "my_package.losses:VICReg"

Discovery reads the entry-point metadata only: nothing is imported until a
component is requested. `CONTRASTIVE_DISABLE_PLUGINS=1` turns discovery off.
"""

import dataclasses
import importlib
import importlib.metadata
import os

GROUP_PREFIX = "contrastive."


@dataclasses.dataclass
class PluginEntry:
    """One entry point of one plugin distribution.

    Attributes:
        kind: the registry kind (`"losses"`, ...).
        name: the component name (the entry point's name).
        target: `"module:object"`, as declared.
        distribution: the name of the distribution that declares it.
        version: that distribution's version.
    """

    kind: str
    name: str
    target: str
    distribution: str
    version: str

    def load(self):
        """Imports and returns the object. Raises whatever the import raises."""
        module_name, _, attribute = self.target.partition(":")
        obj = importlib.import_module(module_name.strip())
        for part in attribute.strip().split(".") if attribute else ():
            obj = getattr(obj, part)
        return obj


_DISABLED = ("1", "true", "yes", "on")
_ENABLED = ("", "0", "false", "no", "off")


def plugins_disabled():
    """Whether `CONTRASTIVE_DISABLE_PLUGINS` turns discovery off."""
    return os.environ.get("CONTRASTIVE_DISABLE_PLUGINS", "").strip().lower() in _DISABLED


def check_switch():
    """Raises SpecError for a `CONTRASTIVE_DISABLE_PLUGINS` that is neither
    on nor off (a typo would otherwise load the plugins silently)."""
    value = os.environ.get("CONTRASTIVE_DISABLE_PLUGINS", "")
    if value.strip().lower() not in _DISABLED + _ENABLED:
        from contrastive.errors import SpecError

        raise SpecError(f"expected one of {', '.join(_DISABLED[:2] + _ENABLED[1:3])} (or unset), "
                        f"received {value!r}", file="CONTRASTIVE_DISABLE_PLUGINS")


def discover(kind):
    """Returns the `PluginEntry` list of the group `contrastive.<kind>`."""
    if plugins_disabled():
        return []
    found = []
    for ep in importlib.metadata.entry_points(group=GROUP_PREFIX + kind):
        dist = getattr(ep, "dist", None)
        found.append(
            PluginEntry(
                kind=kind,
                name=ep.name,
                target=ep.value,
                distribution=dist.metadata["Name"] if dist is not None else "unknown",
                version=dist.version if dist is not None else "",
            )
        )
    return found


def distributions():
    """Returns `{distribution: version}` of every distribution that declares
    contrastive components."""
    if plugins_disabled():
        return {}
    result = {}
    for dist in importlib.metadata.distributions():
        try:
            eps = dist.entry_points
        except Exception:  # noqa: BLE001 (a broken metadata file)
            continue
        if any(ep.group.startswith(GROUP_PREFIX) for ep in eps):
            result[dist.metadata["Name"]] = dist.version
    return result
