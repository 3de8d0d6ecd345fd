"""The evaluation protocols of a representation h, after pretraining and of
a finished run: kNN, linear, and semi-supervised fine-tuning."""

from contrastive.errors import SpecError
from contrastive.evaluation.data import evaluation_data
from contrastive.evaluation.features import check_image_shape, features_of
from contrastive.evaluation.knn import knn_accuracy
from contrastive.evaluation.linear import linear_accuracy

PROTOCOLS = ("knn", "linear", "finetune")


def frozen_features(settings, encoder, train, test, seed=0, log=print):
    """kNN and linear evaluation on h, as `eval` (an `EvalSection`) enables
    them; h of each split is computed once for both.

    Returns:
        `{"knn_accuracy": ..., "linear_accuracy": ...}` (those enabled).
    """
    if not (settings.knn.enabled or settings.linear.enabled):
        return {}
    train_h, test_h = features_of(encoder, train), features_of(encoder, test)
    results = {}
    if settings.knn.enabled:
        results["knn_accuracy"] = knn_accuracy(
            train_h, train.labels, test_h, test.labels, k=settings.knn.k,
            temperature=settings.knn.temperature)
    if settings.linear.enabled:
        linear = settings.linear
        results["linear_accuracy"] = linear_accuracy(
            train_h, train.labels, test_h, test.labels, epochs=linear.epochs,
            learning_rate=linear.learning_rate, batch_size=linear.batch_size, seed=seed)
    for name, value in results.items():
        log(f"{name}: {value:.4f}")
    return results


def evaluate(run, protocol="knn", data=None, **options):
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
            `learning_rate`, `batch_size`) or `finetune` (`fraction`,
            `epochs`, `learning_rate`, `start` = `h` | `head1`, `augment`).
        data: a dataset mapping replacing the run's data.

    Returns:
        A dict: the protocol, its settings, the split sizes and `accuracy`.

    Raises:
        SpecError: an unknown protocol or option, or data without labels or
            a held-out split.
    """
    from contrastive.run import Run

    run = run if isinstance(run, Run) else Run(run)
    if protocol not in PROTOCOLS:
        raise SpecError(f"expected one of {', '.join(PROTOCOLS)}, received {protocol!r}",
                        "protocol")
    spec = run.spec
    settings = _settings(spec, protocol, options)
    encoder = run.encoder(settings.get("start", "h"))
    train, test = evaluation_data(spec, data)
    for split in (train, test):
        check_image_shape(encoder, split, "--data" if data is not None else "data")
    report = {"protocol": protocol, **settings, "train": len(train), "test": len(test)}
    if protocol == "finetune":
        from contrastive.evaluation.finetune import finetune_accuracy

        tuning = {k: v for k, v in settings.items() if k != "start"}
        accuracy, labelled = finetune_accuracy(encoder, train, test, seed=spec.seed, **tuning)
        report["labelled"] = labelled
    else:
        train_h, test_h = features_of(encoder, train), features_of(encoder, test)
        score = knn_accuracy if protocol == "knn" else linear_accuracy
        extra = {} if protocol == "knn" else {"seed": spec.seed}
        accuracy = score(train_h, train.labels, test_h, test.labels, **settings, **extra)
    report["accuracy"] = accuracy
    return report


FINETUNE_DEFAULTS = {"fraction": 0.1, "epochs": 30, "learning_rate": 0.05, "start": "h",
                     "augment": True}


def _settings(spec, protocol, options):
    if protocol == "knn":
        defaults = {"k": spec.eval.knn.k, "temperature": spec.eval.knn.temperature}
    elif protocol == "linear":
        linear = spec.eval.linear
        defaults = {"epochs": linear.epochs, "learning_rate": linear.learning_rate,
                    "batch_size": linear.batch_size}
    else:
        defaults = dict(FINETUNE_DEFAULTS)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise SpecError(f"unknown option(s) {', '.join(unknown)} of {protocol} "
                        f"(expected: {', '.join(defaults)})", protocol)
    return {**defaults, **{k: v for k, v in options.items() if v is not None}}
