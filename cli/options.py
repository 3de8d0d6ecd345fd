"""Options shared by several commands."""

import click

set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a spec value (typed as YAML); repeatable.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
spec_argument = click.argument("spec", type=click.Path(dir_okay=False))
