"""The labelled data an evaluation uses: the training split (the kNN memory
bank and the linear classifier's training set) and the held-out split."""

from contrastive.errors import SpecError
from contrastive.registry import build
from contrastive.training.inputs import load_split


def held_out(spec, dataset, mode="memory"):
    """The held-out split: `eval.data` if the spec sets it, else the `test`
    split of `dataset`, else None; as `Arrays`, or `Files` in `stream` mode."""
    if spec.eval.data is not None:
        return load_split(build("datasets", spec.eval.data, "eval.data"), mode)[1]
    if "test" in dataset.splits:
        return load_split(dataset, mode, "test")[1]
    return None


def evaluation_data(spec, data=None, train=None):
    """`(train, test)`, both labelled, for evaluating a run of `spec`.

    Args:
        spec: the run's spec; its `train.input` decides whether images are
            decoded into memory or read from the files as they are encoded.
        data: a dataset mapping replacing the run's `data` (and `eval.data`).
        train: the training split when already loaded.

    Raises:
        SpecError: no labels, or no held-out split.
    """
    mode = spec.train.input
    dataset = build("datasets", data if data is not None else spec.data,
                    "--data" if data is not None else "data")
    if train is None:
        train = load_split(dataset, mode)[1]
    if data is not None:
        test = load_split(dataset, mode, "test")[1] if "test" in dataset.splits else None
    else:
        test = held_out(spec, dataset, mode)
    if test is None:
        raise SpecError("expected a dataset with a test split, or eval.data", "data")
    if train.labels is None or test.labels is None:
        raise SpecError("expected labelled data for evaluation", "data")
    return train, test
