"""Options shared by several commands."""

import math

import click


class FiniteFloatRange(click.FloatRange):
    """click's `FloatRange` refusing NaN and infinity, which it lets through
    (NaN always; infinity where the range has no bound on its side): the
    type of every float option."""

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"expected a finite number, received {value!r}", param, ctx)
        return super().convert(number, param, ctx)


set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY.PATH=VALUE",
    help="Override a spec value (typed as YAML); repeatable.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
spec_argument = click.argument("spec", type=click.Path(dir_okay=False))
run_option = click.option(
    "--run", "run_dir", required=True, type=click.Path(file_okay=False),
    help="A finished run directory.",
)
data_option = click.option(
    "--data", default=None, metavar="YAML",
    help="A dataset mapping replacing the run's data, e.g. '{name: digits, test_fraction: 0.5}'; "
         "its images must have the size the encoder was trained on.",
)
progress_option = click.option(
    "--progress/--no-progress",
    default=None,
    help="Keras progress bars of each phase, on stderr (stdout keeps the results) "
         "[default: when stderr is a terminal].",
)


def check_split(dataset, split):
    """Raises `SpecError` under `--split` when `dataset` has no split `split`."""
    from contrastive.errors import SpecError

    if split not in dataset.splits:
        raise SpecError(f"expected one of {', '.join(dataset.splits)}, received '{split}'",
                        "--split")


def check_new_png(out):
    """Raises `SpecError` under `--out` unless a new `.png` file can be
    written at `out`; said before anything is computed (files are never
    overwritten)."""
    from contrastive.pictures.figures import check_png_path
    from contrastive.preflight import check_new_file

    check_new_file(check_png_path(out), "--out")


def verbosity(progress):
    """Keras' `verbose` for a `--progress/--no-progress` flag: 1, 0, or
    `"auto"` (a bar when stderr is a terminal) when neither was given."""
    return "auto" if progress is None else int(progress)
