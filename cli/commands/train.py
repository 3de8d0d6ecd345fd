"""`contrastive train SPEC` and `contrastive train --resume DIR`."""

import json
import pathlib

import click

from contrastive_cli.options import json_option, set_option


@click.command("train")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: output.dir).")
@click.option(
    "--resume",
    type=click.Path(file_okay=False),
    help="Continue the run in this directory from its last checkpoint.",
)
@json_option
def command(spec, overrides, out, resume, as_json):
    """Pretrain SimCLR as SPEC says and evaluate h (kNN, linear) on held-out data."""
    from contrastive import training
    from contrastive.errors import SpecError
    from contrastive.spec import load_spec

    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    if resume:
        if spec or overrides or out:
            raise click.UsageError("--resume DIR takes the spec of DIR: give no SPEC, --set or --out")
        try:
            results = training.resume(resume, log=log)
        except SpecError as exc:
            raise exc.with_file(pathlib.Path(resume) / "spec.yaml") from None
    else:
        if not spec:
            raise click.UsageError("expected SPEC, or --resume DIR")
        argv = ["train", spec, *(a for o in overrides for a in ("--set", o))]
        if out:
            argv += ["--out", out]
        loaded = load_spec(spec, overrides)
        try:
            results = training.train(loaded, out_dir=out, log=log, argv=argv)
        except SpecError as exc:
            raise exc.with_file(spec) from None
    if not results.get("chief", True):
        return
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        click.echo(f"run written to {results['run_dir']}")
