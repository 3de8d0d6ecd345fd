"""`contrastive embed --run DIR --out embeddings.npy`: export representations h."""

import contextlib
import pathlib

import click

from contrastive_cli.options import check_split, progress_option, verbosity


@click.command("embed")
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="A finished run directory.")
@click.option("--data", default=None, metavar="YAML",
              help="A dataset mapping; default the run's data.")
@click.option("--split", default="train", show_default=True, help="The dataset split.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .npy file to write.")
@click.option("--labels", "labels_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the labels to this .npy file.")
@progress_option
def command(run_dir, data, split, out, labels_out, progress):
    """Write h of every image of a dataset split as a (N, D) float32 array."""
    import numpy as np

    from contrastive.errors import SpecError
    from contrastive.files import written_atomically
    from contrastive.evaluation import features_of
    from contrastive.evaluation.data import load_under
    from contrastive.evaluation.features import check_image_shape
    from contrastive.evaluation.progress import default_verbosity
    from contrastive.preflight import check_new_file
    from contrastive.registry import build
    from contrastive.run import Run
    from contrastive_cli.commands.eval import _mapping

    # Exactly .npy: np.save adds it to any other name (x.NPY -> x.NPY.npy).
    check_new_file(out, "--out", {".npy"}, exact=True)
    if labels_out:
        check_new_file(labels_out, "--labels", {".npy"}, exact=True)
        if pathlib.Path(labels_out).resolve() == pathlib.Path(out).resolve():
            raise SpecError(f"expected another file than --out, received {labels_out!r}",
                            "--labels")
    run = Run(run_dir)
    spec = run.spec
    encoder = run.encoder()
    key = "--data" if data else "data"
    with run.data_errors():
        dataset = build("datasets", _mapping(data) or spec.data, key)
        check_split(dataset, split)
        with default_verbosity(verbosity(progress)):
            arrays = load_under(dataset, spec.train.input, key, split)
        check_image_shape(encoder, arrays, key)
        if labels_out and arrays.labels is None:
            raise SpecError(f"expected a labelled {split} split to write --labels, received "
                            "one without labels", key)
    features = features_of(encoder, arrays, verbose=verbosity(progress),
                           title=f"h of the {split} split")
    with contextlib.ExitStack() as files:  # both renamed at the end, or neither
        np.save(files.enter_context(written_atomically(out, replace=False)), features)
        if labels_out:
            np.save(files.enter_context(written_atomically(labels_out, replace=False)), arrays.labels)
    click.echo(f"wrote {features.shape[0]} x {features.shape[1]} representations to {out}")
