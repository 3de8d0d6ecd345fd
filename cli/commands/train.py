"""`contrastive train SPEC`: pretrain, then evaluate the representation."""

import json

import click

from contrastive_cli.options import json_option, set_option, spec_argument


@click.command("train")
@spec_argument
@set_option
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: output.dir).")
@json_option
def command(spec, overrides, out, as_json):
    """Pretrain SimCLR as SPEC says and evaluate h (kNN, linear) on held-out data."""
    from contrastive.spec import load_spec
    from contrastive.training import train

    resolved = load_spec(spec, overrides)
    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    results = train(resolved, out_dir=out, log=log)
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        click.echo(f"run written to {results['run_dir']}")
