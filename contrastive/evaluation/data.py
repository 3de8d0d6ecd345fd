"""The labelled data an evaluation uses: the training split (the kNN memory
bank and the linear classifier's training set) and the held-out split.

With labelled pretraining data, they are its training split and the
held-out split (`eval.data`'s images, else the data's `test` split). With
unlabelled pretraining data (self-supervised collections), both come from
`eval.data`: its `train` and `test` splits.
"""

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


def labelled_splits(spec, dataset, train, mode="memory"):
    """`(train, test)`, both labelled, for evaluating h of a run of `spec`
    whose training split `train` (of `dataset`) is already loaded.

    Raises:
        SpecError: no labelled held-out data; the message says why.
    """
    if train.labels is None:
        if spec.eval.data is None:
            raise SpecError("the training data has no labels; set eval.data to a labelled "
                            "dataset with train and test splits", "eval.data")
        source = build("datasets", spec.eval.data, "eval.data")
        if "test" not in source.splits:
            raise SpecError("with unlabelled training data, expected eval.data with a test "
                            "split", "eval.data")
        train, test = load_split(source, mode)[1], load_split(source, mode, "test")[1]
    else:
        test = held_out(spec, dataset, mode)
    if test is None:
        raise SpecError("expected a dataset with a test split, or eval.data", "data")
    if train.labels is None or test.labels is None:
        raise SpecError("expected labelled data for evaluation", "eval.data")
    return train, test


def evaluation_data(spec, data=None):
    """`(train, test)`, both labelled, for evaluating a finished run of
    `spec`.

    Args:
        spec: the run's spec; its `train.input` decides whether images are
            decoded into memory or read from the files as they are encoded.
        data: a dataset mapping replacing the run's `data` (and `eval.data`).

    Raises:
        SpecError: no labels, or no held-out split.
    """
    mode = spec.train.input
    if data is None:
        dataset = build("datasets", spec.data, "data")
        return labelled_splits(spec, dataset, load_split(dataset, mode)[1], mode)
    dataset = build("datasets", data, "--data")
    if "test" not in dataset.splits:
        raise SpecError("expected a dataset with a test split", "--data")
    train, test = load_split(dataset, mode)[1], load_split(dataset, mode, "test")[1]
    if train.labels is None or test.labels is None:
        raise SpecError("expected labelled data for evaluation", "--data")
    return train, test
