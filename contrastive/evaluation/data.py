"""The labelled data an evaluation uses: the training split (the kNN memory
bank and the linear classifier's training set) and the held-out split.

With labelled pretraining data, they are its training split and the
held-out split (`eval.data`'s images, else the data's `test` split). With
unlabelled pretraining data (self-supervised collections), both come from
`eval.data`: its `train` and `test` splits.
"""

import dataclasses

import numpy as np

from contrastive.errors import DataError, SpecError
from contrastive.registry import build
from contrastive.training.inputs import load_split


def load_under(dataset, mode, key, split="train"):
    """`split` of `dataset` (see `load_split`).

    Raises:
        SpecError: the source cannot be read; said under `key`, the spec's
            key (or the option) that names it.
    """
    try:
        return load_split(dataset, mode, split)[1]
    except DataError as exc:
        raise SpecError(str(exc), key) from None


class NoEvaluationData(SpecError):
    """The run has no (labelled) held-out data: evaluation is skipped."""


def held_out(spec, dataset, mode="memory"):
    """The held-out split: `eval.data` if the spec sets it, else the `test`
    split of `dataset`, else None; as `Arrays`, or `Files` in `stream` mode."""
    if spec.eval.data is not None:
        return load_under(build("datasets", spec.eval.data, "eval.data"), mode, "eval.data")
    if "test" in dataset.splits:
        return load_under(dataset, mode, "data", "test")
    return None


def labelled_splits(spec, dataset, train, mode="memory", labelled=True):
    """`(train, test)` for evaluating h of a run of `spec` whose training
    split `train` (of `dataset`) is already loaded.

    Args:
        labelled: require labels of both splits.

    Raises:
        NoEvaluationData: no (labelled) held-out data, or held-out images of
            another shape; the message says why.
        SpecError: held-out data that cannot be read (unreadable images
            under `on_error: fail`) or has classes the training data lacks.
    """
    if train.labels is None and labelled:
        if spec.eval.data is None:
            raise NoEvaluationData("the training data has no labels; set eval.data to a "
                                   "labelled dataset with train and test splits", "eval.data")
        source = build("datasets", spec.eval.data, "eval.data")
        if "test" not in source.splits:
            raise NoEvaluationData("with unlabelled training data, expected eval.data with a "
                                   "test split", "eval.data")
        train = load_under(source, mode, "eval.data")
        test = load_under(source, mode, "eval.data", "test")
    else:
        test = held_out(spec, dataset, mode)
    if test is None:
        hint = " (data.test_path)" if hasattr(dataset, "test_path") else ""
        raise NoEvaluationData(f"expected a dataset with a test split{hint}, or eval.data",
                               "data")
    if labelled and (train.labels is None or test.labels is None):
        raise NoEvaluationData("expected labelled data for evaluation", "eval.data")
    key = "eval.data" if spec.eval.data is not None else "data"
    if tuple(test.image_shape) != tuple(train.image_shape):
        raise NoEvaluationData(f"expected held-out images of the training images' shape "
                               f"{tuple(train.image_shape)}, received "
                               f"{tuple(test.image_shape)}", key)
    return train, same_classes(train, test, key)


def same_classes(train, test, key):
    """`test` with its labels numbered as `train`'s, where both splits name
    their classes (folders number the class names of each split on their
    own: a held-out folder without one training class would shift every
    label after it).

    Raises:
        SpecError: a held-out class the training split lacks; said under
            `key`.
    """
    if not (train.class_names and test.class_names) or test.labels is None:
        return test
    if tuple(test.class_names) == tuple(train.class_names):
        return test
    check_classes(train.class_names, test.class_names, key)
    index = {name: i for i, name in enumerate(train.class_names)}
    numbers = np.array([index[name] for name in test.class_names], dtype=np.int32)
    return dataclasses.replace(test, labels=numbers[test.labels],
                               class_names=tuple(train.class_names))


def evaluation_data(spec, data=None, labelled=True):
    """`(train, test)` for evaluating a finished run of `spec`.

    Args:
        spec: the run's spec; its `train.input` decides whether images are
            decoded into memory or read from the files as they are encoded.
        data: a dataset mapping replacing the run's `data` (and `eval.data`).
        labelled: require labels of both splits.

    Raises:
        SpecError: no labels (when required), or no held-out split.
    """
    mode = spec.train.input
    if data is None:
        dataset = build("datasets", spec.data, "data")
        return labelled_splits(spec, dataset, load_under(dataset, mode, "data"), mode, labelled)
    dataset = build("datasets", data, "--data")
    if "test" not in dataset.splits:
        hint = " (set its test_path)" if hasattr(dataset, "test_path") else ""
        raise SpecError(f"expected a dataset with a test split, received {data['name']} "
                        f"without one{hint}", "--data")
    train, test = load_under(dataset, mode, "--data"), load_under(dataset, mode, "--data", "test")
    if labelled and (train.labels is None or test.labels is None):
        raise SpecError("expected labelled data for evaluation", "--data")
    return train, same_classes(train, test, "--data")


def held_out_split(spec, data=None):
    """The held-out split a run of `spec` is evaluated on, alone (see
    `evaluation_data`); labels are not required.

    Raises:
        SpecError: no held-out split.
    """
    return evaluation_data(spec, data, labelled=False)[1]


def run_splits(run, data=None, start="h", labelled=True):
    """The encoder of a finished run and the `(train, test)` splits it is
    evaluated on (`evaluation_data`), checked to have the image shape the
    encoder was trained on.

    Args:
        run: a `Run`.
        data: a dataset mapping replacing the run's data (`--data`).
        start: the encoder's output, `h` or `head1` (see `Run.encoder`).
        labelled: require labels of both splits.

    Returns:
        `(encoder, train, test)`.

    Raises:
        SpecError: the run is not finished, the data has no held-out split
            or labels, or images of another shape.
    """
    from contrastive.evaluation.features import check_image_shape

    encoder = run.encoder(start)
    with run.data_errors():
        train, test = evaluation_data(run.spec, data, labelled=labelled)
        for split in (train, test):
            check_image_shape(encoder, split, "--data" if data is not None else "data")
    return encoder, train, test


def check_classes(train, test, key):
    """Raises `SpecError` under `key` unless every held-out class name in
    `test` is one of the training split's, `train`."""
    known = set(train)
    unknown = [name for name in test if name not in known]
    if unknown:
        shown = ", ".join(map(str, train[:10])) + (f" and {len(train) - 10} more"
                                                   if len(train) > 10 else "")
        received = ", ".join(map(str, unknown[:5])) + (" and more" if len(unknown) > 5 else "")
        raise SpecError(f"expected held-out classes among the training split's ({shown}), "
                        f"received {received} in the held-out split", key)
