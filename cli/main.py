"""Entry point of the `contrastive` command.

Exit codes: 0 success; 2 bad usage or bad input (one line on stderr, no
traceback); 1 a failure while running (a process of a multi-process run
that stopped: one line too) or Ctrl-C. A SIGTERM ends the command by that
signal (status 143 in a shell), after its one line.
"""

import atexit
import importlib
import os
import pkgutil
import signal
import sys
import traceback
import warnings

import click

from contrastive_cli import commands, tensorflow_noise

BACKENDS = ("jax", "torch", "tensorflow")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="Keras backend for this run (sets KERAS_BACKEND).",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of failures.")
@click.version_option(package_name="contrastive")
@click.pass_context
def app(ctx, backend, debug):
    """SimCLR as a Keras 3 framework of pluggable components."""
    if backend:
        if "keras" in sys.modules and os.environ.get("KERAS_BACKEND") != backend:
            raise click.UsageError("--backend must be chosen before Keras is imported")
        os.environ["KERAS_BACKEND"] = backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    ctx.obj = {"debug": debug}


def _add_commands():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = getattr(module, "command", None)
        if isinstance(command, click.Command):
            app.add_command(command)


_add_commands()


def main(argv=None):
    """Runs the application; turns contrastive's errors into one line and
    their exit code, 2 or 1 (with `--debug`, after the traceback)."""
    from contrastive import interrupts
    from contrastive.distribute import jax_supervisor
    from contrastive.errors import ContrastiveError

    # A non-coordinator process of a multi-process jax run runs its command
    # in a supervised child (see `jax_supervisor`).
    args = sys.argv[1:] if argv is None else list(argv)
    if jax_supervisor.needed(args):
        try:
            sys.exit(jax_supervisor.supervise(args))
        except OSError as exc:
            click.echo(f"error: could not start the supervised training process: {exc}",
                       err=True)
            sys.exit(1)
    debug = "--debug" in args
    warnings.formatwarning = _one_line_warning
    tensorflow_noise.install()
    if argv is None:  # a process of its own, not a caller's (tests call main(args))
        interrupts.install()
    try:
        _check_environment(chosen=any(a == "--backend" or a.startswith("--backend=")
                                      for a in args))
        # Without standalone mode, click returns a command's `ctx.exit(code)`.
        code = app.main(args=argv, prog_name="contrastive", standalone_mode=False)
        interrupts.raise_if_interrupted()  # one lost where nothing raised it again
    except click.exceptions.Abort as exc:  # click's, from a KeyboardInterrupt
        click.echo(f"aborted{_resume_hint(exc)}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except ContrastiveError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {_one_line(exc)}{_resume_hint(exc)}", err=True)
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, interrupts.Interrupted) as exc:
        terminated = isinstance(exc, interrupts.Terminated)
        if argv is None:  # a second Ctrl-C or kill changes nothing
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        click.echo(f"{'terminated' if terminated else 'interrupted'}{_resume_hint(exc)}",
                   err=True)
        if argv is None:
            # A process of its own: jax's runtime can crash (SIGSEGV) while
            # Python finalises after an interrupt. The exit hooks (temporary
            # folders, jax's shutdown) run; the finalisation does not.
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            if terminated:  # ended by the signal, as a scheduler expects to see it
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.raise_signal(signal.SIGTERM)
            os._exit(1)
        sys.exit(128 + signal.SIGTERM if terminated else 1)
    except Exception as exc:  # noqa: BLE001 (the last line of defence)
        if debug:
            raise
        click.echo(f"failed: {type(exc).__name__}: {_one_line(exc)}{_resume_hint(exc)} "
                   "(run with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(code if type(code) is int else 0)


def _resume_hint(exc):
    """`; continue with: contrastive train --resume DIR` for a run that
    stopped after a checkpoint (`contrastive.training.train` says which)."""
    while exc is not None and not getattr(exc, "resume_hint", None):
        exc = exc.__cause__ or exc.__context__
    return f"; continue with: {exc.resume_hint}" if exc is not None else ""


def _one_line(exc):
    return " ".join(str(exc).split())


def _one_line_warning(message, category, filename, lineno, line=None):
    """Warnings as `warning: <message>` on one line, without the source."""
    del category, filename, lineno, line
    return f"warning: {' '.join(str(message).split())}\n"


def _check_environment(chosen=False):
    """KERAS_BACKEND, or (unless `--backend` was `chosen`) keras.json's
    backend, and contrastive's torch variables."""
    from contrastive import plugins, torch_switches
    from contrastive.distribute.base import configured_backend, keras_json
    from contrastive.errors import SpecError

    _check_keras_json(keras_json())
    backend = os.environ.get("KERAS_BACKEND")
    if backend is not None and backend not in BACKENDS:
        raise SpecError(f"expected one of {', '.join(BACKENDS)}, received {backend!r}",
                        file="KERAS_BACKEND")
    if not backend and not chosen:
        configured = configured_backend()
        if configured not in BACKENDS:
            raise SpecError(f"expected one of {', '.join(BACKENDS)}, received {configured!r} "
                            "(or set KERAS_BACKEND)", "backend", file=keras_json())
    torch_switches.check()
    plugins.check_switch()


def _check_keras_json(path):
    """Keras ignores a keras.json it cannot parse, but fails on import when
    the file holds JSON other than an object."""
    import json

    from contrastive.errors import SpecError

    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return
    if not isinstance(config, dict):
        kind = {list: "a list", str: "a string", type(None): "null"}.get(type(config), "a number")
        raise SpecError(f"expected a JSON object (Keras' settings), received {kind}",
                        file=str(path))


if __name__ == "__main__":
    main()
