"""`contrastive eval knn|linear|finetune --run DIR`: evaluate a finished run."""

import json

import click

from contrastive_cli.options import (
    FiniteFloatRange,
    data_option,
    json_option,
    progress_option,
    run_option,
    verbosity,
)


@click.group("eval")
def command():
    """Evaluate the representation h of a finished run on labelled data."""


@command.command("knn")
@run_option
@data_option
@click.option("--k", default=None, type=click.IntRange(min=1),
              help="Neighbours [default: the run's eval.knn.k].")
@click.option("--temperature", default=None, type=FiniteFloatRange(min=0, min_open=True),
              help="Vote temperature [default: the run's eval.knn.temperature].")
@json_option
@progress_option
def knn(run_dir, data, k, temperature, as_json, progress):
    """Weighted kNN on frozen h (cosine similarity, on the backend's device):
    top-1 and top-5 accuracy."""
    _evaluate(run_dir, "knn", data, as_json, progress, k=k, temperature=temperature)


@command.command("linear")
@run_option
@data_option
@click.option("--epochs", default=None, type=click.IntRange(min=1),
              help="Passes over the features [default: the run's eval.linear.epochs].")
@click.option("--learning-rate", default=None, type=FiniteFloatRange(min=0, min_open=True),
              help="Adam's learning rate [default: the run's eval.linear.learning_rate].")
@click.option("--augment/--no-augment", default=None,
              help="Train on h of a new random crop and flip of each training image every "
                   "epoch, through the frozen encoder (slower) [default: the run's "
                   "eval.linear.augment].")
@json_option
@progress_option
def linear(run_dir, data, epochs, learning_rate, augment, as_json, progress):
    """Linear classifier on frozen h: the features computed once, or with
    --augment of augmented training images every epoch."""
    _evaluate(run_dir, "linear", data, as_json, progress, epochs=epochs,
              learning_rate=learning_rate, augment=augment)


@command.command("finetune")
@run_option
@data_option
@click.option("--fraction", default=0.1, show_default=True,
              type=FiniteFloatRange(min=0, max=1, min_open=True),
              help="Share of each class labelled (the paper: 0.01 or 0.1).")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--learning-rate", default=0.05, show_default=True,
              type=FiniteFloatRange(min=0, min_open=True))
@click.option("--start", type=click.Choice(["h", "head1"]), default="h", show_default=True,
              help="Fine-tune from h, or from the head's first layer (SimCLR v2).")
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random crops and flips of the training images, as the paper fine-tunes.")
@json_option
@progress_option
def finetune(run_dir, data, fraction, epochs, learning_rate, start, augment, as_json, progress):
    """Fine-tune the encoder on a class-balanced labelled subset."""
    _evaluate(run_dir, "finetune", data, as_json, progress, fraction=fraction, epochs=epochs,
              learning_rate=learning_rate, start=start, augment=augment)


def _evaluate(run_dir, protocol, data, as_json, progress, **options):
    from contrastive.evaluation import evaluate

    result = evaluate(run_dir, protocol, data=_mapping(data), verbose=verbosity(progress),
                      **options)
    _report(result, as_json)


def _mapping(text):
    if text is None:
        return None
    from contrastive.errors import SpecError
    from contrastive.spec import load_value

    value = load_value(text, option="--data")
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
        shown = f"{value:.4f}" if isinstance(value, float) and key.endswith("accuracy") else value
        click.echo(f"{key:<{width}}  {shown}")
