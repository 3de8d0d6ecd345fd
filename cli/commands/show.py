"""`contrastive show KIND NAME`: one component's arguments and documentation."""

import inspect
import json

import click

from contrastive_cli.completion import complete_kind, complete_name
from contrastive_cli.options import json_option


@click.command("show")
@click.argument("kind", shell_complete=complete_kind)
@click.argument("name", shell_complete=complete_name)
@json_option
def command(kind, name, as_json):
    """Show the arguments (with defaults), docstring and origin of a component."""
    from contrastive import kinds
    from contrastive.registry import get_registry

    registry = get_registry(kind)
    entry = registry.entry(name)
    run_time = set(kinds.get(registry.kind).context)
    params = [p for p in registry.parameters(name) if p.name not in run_time]
    doc = inspect.getdoc(entry.obj) or ""
    if as_json:
        click.echo(
            json.dumps(
                {
                    "kind": registry.kind,
                    "name": entry.name,
                    "origin": entry.origin,
                    "version": entry.version,
                    "object": f"{entry.obj.__module__}.{entry.obj.__qualname__}",
                    "arguments": [
                        {
                            "name": p.name,
                            "expected": p.expected,
                            "required": p.required,
                            "default": None if p.required else _jsonable(p.default),
                        }
                        for p in params
                    ],
                    "doc": doc,
                },
                indent=2,
            )
        )
        return
    origin = entry.origin + (f" {entry.version}" if entry.version else "")
    click.echo(f"{registry.singular} {entry.name}  ({origin}: "
               f"{entry.obj.__module__}.{entry.obj.__qualname__})")
    click.echo("arguments:")
    if not params:
        click.echo("  (none)")
    for p in params:
        default = "required" if p.required else f"default {_yaml(p.default)}"
        click.echo(f"  {p.name}: {p.expected}; {default}")
    if run_time:
        click.echo(f"set by contrastive at run time: {', '.join(sorted(run_time))}")
    if doc:
        click.echo("")
        click.echo(doc)


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


def _yaml(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)
