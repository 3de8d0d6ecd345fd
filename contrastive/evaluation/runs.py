"""Evaluating a finished run directory: its spec, its encoder, its data."""

import pathlib

from contrastive.errors import SpecError


def load_run(run_dir, start="h"):
    """Returns `(spec, encoder)` of a run directory.

    Args:
        run_dir: a finished run directory.
        start: `h` for the encoder, `head1` for the encoder followed by the
            projection head's first layer (SimCLR v2).

    Raises:
        SpecError: the directory lacks `spec.yaml` or the model file.
    """
    import keras

    from contrastive.spec import load_spec

    run_dir = pathlib.Path(run_dir)
    model_file = "encoder.keras" if start == "h" else "encoder_head1.keras"
    for name in ("spec.yaml", model_file):
        if not (run_dir / name).exists():
            raise SpecError(f"{run_dir}: expected a finished run directory with {name}", "--run")
    spec = load_spec(run_dir / "spec.yaml")
    import contrastive.encoders  # noqa: F401 (registers the classes the file names)
    import contrastive.heads  # noqa: F401

    encoder = keras.saving.load_model(run_dir / model_file)
    return spec, encoder


def load_data(spec, data=None):
    """The labelled training and held-out sets for evaluation: `Arrays`, or
    `Files` read batch by batch where the run streams (`train.input`).

    Args:
        spec: the run's spec.
        data: a dataset mapping replacing the run's `data`, or None.

    Raises:
        SpecError: no labels, or no held-out split.
    """
    from contrastive.inputs import load_training_set
    from contrastive.registry import build

    mode = spec["train"]["input"]
    source = data if data is not None else spec["data"]
    dataset = build("datasets", source, "data")
    train = load_training_set(dataset, mode)[1]
    if spec["eval"]["data"] is not None and data is None:
        held_out = build("datasets", spec["eval"]["data"], "eval.data")
        test = load_training_set(held_out, mode)[1]
    elif "test" in dataset.splits:
        test = load_training_set(dataset, mode, "test")[1]
    else:
        raise SpecError("expected a dataset with a test split, or eval.data", "data")
    if train.labels is None or test.labels is None:
        raise SpecError("expected labelled data for evaluation", "data")
    return train, test
