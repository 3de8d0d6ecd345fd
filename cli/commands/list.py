"""`contrastive list [KIND] [PATTERN]`: registered and discovered components."""

import json

import click

from contrastive_cli.completion import complete_kind, complete_name
from contrastive_cli.options import json_option


@click.command("list")
@click.argument("kind", required=False, shell_complete=complete_kind)
@click.argument("pattern", required=False, default="*", shell_complete=complete_name)
@json_option
def command(kind, pattern, as_json):
    """List components of every KIND (or one), names matching the glob PATTERN.

    Plugins are imported to check them; a plugin that fails to import is
    listed with its distribution and error, and everything else still works.
    """
    from contrastive.registry import KINDS, get_registry

    kinds = [get_registry(kind).kind] if kind else list(KINDS)
    rows = []
    for name in kinds:
        registry = get_registry(name)
        registry.check_plugins()
        for entry in registry.entries(pattern):
            rows.append(
                {
                    "kind": name,
                    "name": entry.name,
                    "origin": entry.origin,
                    "version": entry.version,
                    "status": _status(entry),
                    "error": entry.error,
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for name in kinds:
        click.echo(f"{name}:")
        found = [r for r in rows if r["kind"] == name]
        if not found:
            click.echo("  (none)")
        width = max((len(r["name"]) for r in found), default=0)
        for row in found:
            origin = row["origin"] + (f" {row['version']}" if row["version"] else "")
            line = f"  {row['name']:<{width}}  {origin}"
            if row["status"] != "ok":
                line += f"  [{row['status']}]"
            if row["error"]:
                line += f"  {row['error']}"
            click.echo(line)


def _status(entry):
    if entry.shadowed_by_builtin:
        return "shadowed by the built-in of the same name"
    if entry.error:
        return "failed to import"
    return "ok"
