"""`contrastive validate SPEC`: check a spec without running anything."""

import os
import sys

import click

from contrastive.errors import SpecError

from contrastive_cli.options import set_option, spec_argument


@click.command("validate")
@spec_argument
@set_option
@click.option("--print", "show", is_flag=True, help="Print the resolved spec.")
def command(spec, overrides, show):
    """Check SPEC (YAML, TOML or JSON) and its overrides; exit 2 on a problem."""
    if "keras" not in sys.modules:
        # Constructing the components makes variables (seed generators):
        # on the CPU, so that validating never takes an accelerator's memory.
        os.environ["JAX_PLATFORMS"] = "cpu"
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from contrastive.preflight import check
    from contrastive.spec import load_spec

    resolved = load_spec(spec, overrides)
    try:
        check(resolved)
    except SpecError as exc:
        raise resolved.blame(exc) from None
    if show:
        click.echo(resolved.to_yaml(), nl=False)
    else:
        click.echo(f"{spec}: ok")
