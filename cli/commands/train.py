"""`contrastive train SPEC` and `contrastive train --resume DIR`."""

import contextlib
import json
import pathlib
import sys

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
    from contrastive.errors import SpecError
    from contrastive.training import resume as resume_run
    from contrastive.training import train

    log = (lambda line: click.echo(line, err=True)) if as_json else click.echo
    if resume and (spec or overrides or out):
        raise click.UsageError("--resume DIR takes the spec of DIR: give no SPEC, --set or --out")
    if not (spec or resume):
        raise click.UsageError("expected SPEC, or --resume DIR")
    for option, value in (("--out", out), ("--resume", resume)):
        if value is not None and not value.strip():  # an empty shell variable
            raise SpecError(f"expected a folder, received {value!r}", option)
    # With --json, stdout holds the JSON alone: Keras' progress bars go to stderr.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        if resume:
            try:
                run = resume_run(resume, log=log)
            except SpecError as exc:
                raise exc.with_file(pathlib.Path(resume) / "spec.yaml") from None
        else:
            loaded = _load(spec, overrides, out, log)
            try:
                run = train(loaded, out=out, log=log)
            except SpecError as exc:
                raise loaded.blame(exc) from None
    if not run.chief:
        return
    if as_json:
        click.echo(json.dumps(run.results, indent=2))
    elif not run.untouched:
        click.echo(f"run written to {run.path}")


def _load(spec, overrides, out, log):
    """The spec; prints the commands that start the run on several machines
    (a distributed run started as one process), and refuses, with the exact
    torchrun command, a run that needs more processes than this one."""
    from contrastive.distribute import from_spec
    from contrastive.distribute.base import machine_commands
    from contrastive.errors import SpecError
    from contrastive.spec import load_spec
    from contrastive.training import LaunchRequired

    loaded = load_spec(spec, overrides)
    argv = ["train", spec, *(a for o in overrides for a in ("--set", o))]
    if out:
        argv += ["--out", out]
    try:
        distribution = from_spec(loaded.distribute)
    except SpecError as exc:
        raise loaded.blame(exc) from None
    if distribution.strategy != "none" and distribution.num_processes == 1:
        import keras

        log("on several machines (HOST0: the first machine's address; the same "
            "--out on shared storage), run one line on each:")
        for line in machine_commands(keras.backend.backend(), argv):
            log(f"  {line}")
    command = distribution.launch_command(argv)
    if command:
        raise LaunchRequired(f"this run has {distribution.num_replicas} processes; "
                             f"start it with: {command}")
    return loaded
