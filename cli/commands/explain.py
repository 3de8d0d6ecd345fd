"""`contrastive explain SPEC`: the resolved schedule, and where the spec
departs from the paper's defaults."""

import json

import click

from contrastive_cli.options import json_option, set_option, spec_argument


@click.command("explain")
@spec_argument
@set_option
@json_option
def command(spec, overrides, as_json):
    """Show SPEC's resolved schedule (peak learning rate after scaling,
    warmup and total steps) and every setting that departs from the paper's
    defaults for its preset."""
    from contrastive.explain import explain, render
    from contrastive.spec import load_spec

    explanation = explain(load_spec(spec, overrides))
    if as_json:
        click.echo(json.dumps(explanation.as_dict(), indent=2, default=str))
    else:
        click.echo(render(explanation))
