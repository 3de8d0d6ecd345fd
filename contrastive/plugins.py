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


def plugins_disabled():
    return os.environ.get("CONTRASTIVE_DISABLE_PLUGINS", "").strip().lower() in (
        "1",
        "true",
        "yes",
        "on",
    )


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
