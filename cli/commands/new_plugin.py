"""`contrastive new-plugin NAME [--kind KIND]`: a ready-to-install plugin."""

import click

from contrastive.kinds import NAMES as KINDS


@click.command("new-plugin")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="losses",
    show_default=True,
    help="The kind of the plugin's component.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory to create (default ./NAME); never overwritten.",
)
@click.option(
    "--component",
    default=None,
    help="The component's name in specs (default: NAME without 'contrastive-').",
)
def command(name, kind, out, component):
    """Write a plugin distribution NAME: pyproject.toml with the entry point,
    the component, a README and a test.

    `pip install DIR` and the component is listed by `contrastive list`.
    """
    from contrastive.scaffold import write_plugin

    root, names = write_plugin(name, kind, out, component)
    click.echo(f"wrote {root}: the {kind} component '{names.component}' "
               f"({names.package}.{names.module}:{names.class_name})")
    click.echo(f"next: pip install -e {root} && contrastive list {kind} {names.component}")
