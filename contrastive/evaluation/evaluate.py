"""The evaluation protocols of a representation h, after pretraining and of
a finished run: kNN, linear, and semi-supervised fine-tuning."""

import numpy as np

from contrastive.errors import SpecError
from contrastive.evaluation.data import run_splits
from contrastive.evaluation.features import features_of
from contrastive.evaluation.knn import knn_accuracies
from contrastive.evaluation.linear import augmented_linear_accuracy, linear_accuracy

PROTOCOLS = ("knn", "linear", "finetune")


RAW_PIXELS_LIMIT = 16384  # values per image, for the raw-pixel baseline


def frozen_features(settings, encoder, train, test, seed=0, log=print, verbose=0):
    """kNN and linear evaluation on h, as `eval` (an `EvalSection`) enables
    them; h of each split is computed once for both.

    Args:
        settings: the spec's `eval` section.
        encoder: a model from float32 images in [0, 1] to h.
        train, test: the labelled splits.
        seed: the linear classifier's seed.
        log: prints a result line.
        verbose: 0, 1 or `"auto"`: a progress bar of each phase on stderr.

    Returns:
        `{"knn_accuracy": ..., "knn_top5_accuracy": ..., "linear_accuracy":
        ...}` (those enabled; `knn_accuracy` is kNN's top-1).
    """
    if not (settings.knn.enabled or settings.linear.enabled):
        return {}
    train_h, test_h = split_features(encoder, train, test, verbose)
    return _score(settings, train_h, test_h, train, test, seed, log, verbose, encoder)


def baselines(settings, encoder_spec, train, test, seed=0, log=print, verbose=0):
    """The same evaluation of what pretraining started from: the raw pixels
    (flattened, when an image has at most `RAW_PIXELS_LIMIT` values) and a
    randomly initialised encoder of the spec's architecture.

    Returns:
        `{"raw_pixels": {...}, "random_encoder": {...}}` (each as
        `frozen_features` returns it).
    """
    import keras

    from contrastive.registry import build

    results = {}
    values = int(np.prod(train.image_shape))
    if values <= RAW_PIXELS_LIMIT:
        pixels = keras.Sequential([keras.layers.Flatten()])
        results["raw_pixels"] = _score(settings, _pixels(train), _pixels(test), train, test,
                                       seed, _prefixed(log, "raw pixels"), verbose, pixels)
    else:
        log(f"raw-pixel baseline skipped: {values} values an image (at most {RAW_PIXELS_LIMIT})")
    keras.utils.set_random_seed(seed + 1)
    random_encoder = build("encoders", encoder_spec, "encoder")
    results["random_encoder"] = frozen_features(settings, random_encoder, train, test, seed,
                                                _prefixed(log, "random encoder"), verbose)
    return results


def comparison(pretrained, baseline):
    """A table of the pretrained h's accuracies beside the baselines'."""
    rows = [("raw pixels", baseline.get("raw_pixels")),
            ("random encoder", baseline.get("random_encoder")),
            ("pretrained h", pretrained)]
    metrics = [m for m in ("knn_accuracy", "knn_top5_accuracy", "linear_accuracy")
               if m in pretrained]
    names = {"knn_accuracy": "kNN", "knn_top5_accuracy": "kNN top-5", "linear_accuracy": "linear"}
    lines = ["features        " + "".join(f"{names[m]:>11}" for m in metrics)]
    for name, values in rows:
        if values is not None:
            lines.append(f"{name:<16}" + "".join(f"{values[m]:>11.4f}" for m in metrics))
    return "\n".join(lines)


def _pixels(data):
    return np.concatenate([batch.reshape(len(batch), -1).astype("float32") / 255.0
                           for batch in data.batches(1024)])


def _prefixed(log, prefix):
    return lambda line: log(f"{prefix}, {line}")


def _score(settings, train_h, test_h, train, test, seed, log, verbose, encoder):
    """kNN and linear accuracy of the features `train_h`, `test_h` of the
    splits `train`, `test`, which `encoder` (float32 images in [0, 1] to
    features) computed."""
    results = {}
    if settings.knn.enabled:
        knn = knn_accuracies(train_h, train.labels, test_h, test.labels, k=settings.knn.k,
                             temperature=settings.knn.temperature, verbose=verbose)
        results["knn_accuracy"], results["knn_top5_accuracy"] = knn["top1"], knn["top5"]
    if settings.linear.enabled:
        linear = settings.linear
        results["linear_accuracy"] = _linear(
            encoder, train, test, train_h, test_h, seed=seed, verbose=verbose,
            epochs=linear.epochs, learning_rate=linear.learning_rate,
            batch_size=linear.batch_size, augment=linear.augment)
    for name, value in results.items():
        log(f"{name}: {value:.4f}")
    return results


def split_features(encoder, train, test, verbose=0):
    """h of the training and the held-out split, each under its progress bar."""
    return (features_of(encoder, train, verbose=verbose, title="h of the training split"),
            features_of(encoder, test, verbose=verbose, title="h of the held-out split"))


def evaluate(run, protocol="knn", data=None, verbose="auto", **options):
    """Evaluates h of a finished run with one protocol.

    Settings default to the run's own (`eval.knn`, `eval.linear` of its
    spec); `options` override them.

    Example:

    ```python
    run = contrastive.Run("runs/digits")
    contrastive.evaluate(run, "knn", k=20)["accuracy"]
    contrastive.evaluate(run, "finetune", fraction=0.1, start="head1")
    ```

    Args:
        run: a `Run` or its directory.
        protocol: `knn` (options `k`, `temperature`), `linear` (`epochs`,
            `learning_rate`, `batch_size`, `augment`) or `finetune` (`fraction`,
            `epochs`, `learning_rate`, `start` = `h` | `head1`, `augment`).
        data: a dataset mapping replacing the run's data.
        verbose: 0, 1 or `"auto"` (a bar when stderr is a terminal): a
            progress bar of each phase on stderr.

    Returns:
        A dict: the protocol, its settings, the split sizes and `accuracy`
        (top-1); kNN adds `top5_accuracy`.

    Raises:
        SpecError: an unknown protocol or option, or data without labels or
            a held-out split.
    """
    from contrastive.evaluation.progress import default_verbosity
    from contrastive.run import Run

    run = run if isinstance(run, Run) else Run(run)
    if protocol not in PROTOCOLS:
        raise SpecError(f"expected one of {', '.join(PROTOCOLS)}, received {protocol!r}",
                        "protocol")
    spec = run.spec
    settings = _settings(spec, protocol, options)
    with default_verbosity(verbose):
        encoder, train, test = run_splits(run, data, settings.get("start", "h"))
    report = {"protocol": protocol, **settings, "train": len(train), "test": len(test)}
    return {**report, **_measure(protocol, encoder, train, test, settings, spec.seed, verbose)}


def _measure(protocol, encoder, train, test, settings, seed, verbose):
    """The accuracy of one protocol, and what else it reports."""
    if protocol == "finetune":
        from contrastive.evaluation.finetune import finetune_accuracy

        tuning = {k: v for k, v in settings.items() if k != "start"}
        accuracy, labelled = finetune_accuracy(encoder, train, test, seed=seed,
                                               verbose=verbose, **tuning)
        return {"labelled": labelled, "accuracy": accuracy}
    train_h, test_h = split_features(encoder, train, test, verbose)
    if protocol == "linear":
        return {"accuracy": _linear(encoder, train, test, train_h, test_h, seed=seed,
                                    verbose=verbose, **settings)}
    knn = knn_accuracies(train_h, train.labels, test_h, test.labels, **settings,
                         verbose=verbose)
    return {"accuracy": knn["top1"], "top5_accuracy": knn["top5"]}


def _linear(encoder, train, test, train_h, test_h, augment=False, **settings):
    """The linear protocol's accuracy: on h computed once, or with
    `augment` on h of augmented training images."""
    if augment:
        return augmented_linear_accuracy(encoder, train, test, train_h, **settings)
    return linear_accuracy(train_h, train.labels, test_h, test.labels, **settings)


FINETUNE_DEFAULTS = {"fraction": 0.1, "epochs": 30, "learning_rate": 0.05, "start": "h",
                     "augment": True}


def _settings(spec, protocol, options):
    if protocol == "knn":
        defaults = {"k": spec.eval.knn.k, "temperature": spec.eval.knn.temperature}
    elif protocol == "linear":
        linear = spec.eval.linear
        defaults = {"epochs": linear.epochs, "learning_rate": linear.learning_rate,
                    "batch_size": linear.batch_size, "augment": linear.augment}
    else:
        defaults = dict(FINETUNE_DEFAULTS)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise SpecError(f"unknown option(s) {', '.join(unknown)} of {protocol} "
                        f"(expected: {', '.join(defaults)})", protocol)
    return {**defaults, **{k: v for k, v in options.items() if v is not None}}
