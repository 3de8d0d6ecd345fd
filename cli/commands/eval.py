"""`contrastive eval knn|linear|finetune --run DIR`: evaluate a finished run."""

import json

import click

from contrastive_cli.options import json_option

run_option = click.option(
    "--run", "run_dir", required=True, type=click.Path(file_okay=False), help="A finished run directory."
)
data_option = click.option(
    "--data", default=None, metavar="YAML",
    help="A dataset mapping replacing the run's data, e.g. '{name: digits, size: 16}'.",
)


@click.group("eval")
def command():
    """Evaluate the representation h of a finished run on labelled data."""


@command.command("knn")
@run_option
@data_option
@click.option("--k", default=200, show_default=True, type=click.IntRange(min=1))
@click.option("--temperature", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True))
@json_option
def knn(run_dir, data, k, temperature, as_json):
    """Weighted kNN on frozen h (cosine similarity)."""
    from contrastive.evaluation import features_of, knn_accuracy
    from contrastive.evaluation.runs import load_data, load_run

    spec, encoder = load_run(run_dir)
    train, test = load_data(spec, _mapping(data))
    accuracy = knn_accuracy(features_of(encoder, train), train.labels,
                            features_of(encoder, test), test.labels, k=k, temperature=temperature)
    _report({"protocol": "knn", "k": k, "temperature": temperature, "train": len(train),
             "test": len(test), "accuracy": accuracy}, as_json)


@command.command("linear")
@run_option
@data_option
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--learning-rate", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@json_option
def linear(run_dir, data, epochs, learning_rate, as_json):
    """Linear classifier on frozen h, the features computed once."""
    from contrastive.evaluation import features_of, linear_accuracy
    from contrastive.evaluation.runs import load_data, load_run

    spec, encoder = load_run(run_dir)
    train, test = load_data(spec, _mapping(data))
    accuracy = linear_accuracy(features_of(encoder, train), train.labels,
                               features_of(encoder, test), test.labels,
                               epochs=epochs, learning_rate=learning_rate, seed=spec["seed"])
    _report({"protocol": "linear", "epochs": epochs, "train": len(train), "test": len(test),
             "accuracy": accuracy}, as_json)


@command.command("finetune")
@run_option
@data_option
@click.option("--fraction", default=0.1, show_default=True,
              type=click.FloatRange(min=0, max=1, min_open=True),
              help="Share of each class labelled (the paper: 0.01 or 0.1).")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--learning-rate", default=0.05, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--start", type=click.Choice(["h", "head1"]), default="h", show_default=True,
              help="Fine-tune from h, or from the head's first layer (SimCLR v2).")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random crops and flips of the training images, as the paper fine-tunes.")
@json_option
def finetune(run_dir, data, fraction, epochs, learning_rate, start, augment, as_json):
    """Fine-tune the encoder on a class-balanced labelled subset."""
    from contrastive.evaluation.finetune import finetune_accuracy
    from contrastive.evaluation.runs import load_data, load_run

    spec, encoder = load_run(run_dir, start)
    train, test = load_data(spec, _mapping(data))
    accuracy, size = finetune_accuracy(encoder, train, test, fraction=fraction, epochs=epochs,
                                       learning_rate=learning_rate, seed=spec["seed"],
                                       augment=augment)
    _report({"protocol": "finetune", "start": start, "fraction": fraction, "labelled": size,
             "epochs": epochs, "augment": augment,
             "test": len(test), "accuracy": accuracy}, as_json)


def _mapping(text):
    if text is None:
        return None
    from contrastive.errors import SpecError
    from contrastive.spec import load_yaml

    try:
        value = load_yaml(text)
    except Exception as exc:  # noqa: BLE001 (any YAML error)
        raise SpecError(f"expected a YAML mapping, received {text!r}: {exc}", "--data") from None
    if not isinstance(value, dict):
        raise SpecError(f"expected a YAML mapping with a name, received {text!r}", "--data")
    from contrastive.spec import resolve_component

    return resolve_component("datasets", value, "--data")


def _report(result, as_json):
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:.4f}" if isinstance(value, float) and key == "accuracy" else value
        click.echo(f"{key:<{width}}  {shown}")
