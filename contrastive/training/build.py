"""The parts of a run, built from its spec: data input, augmenter, encoder,
head, loss, optimizer with its schedule, and the assembled model."""

import dataclasses

from contrastive.errors import DataError, SpecError
from contrastive.preflight import check_encoder_input
from contrastive.registry import build, get_registry
from contrastive.training.inputs import training_input


@dataclasses.dataclass
class Parts:
    """The components a spec describes, built and ready to assemble.

    Attributes:
        dataset: the `data` dataset.
        input: the `TrainingInput` of its training split.
        augmenter, encoder, head, loss: the components (augmenter None when
            the spec turns augmentation off).
    """

    dataset: object
    input: object
    augmenter: object
    encoder: object
    head: object
    loss: object

    @property
    def steps_per_epoch(self):
        return self.input.steps_per_epoch


def build_parts(spec, distribution=None):
    """Builds the dataset and its training input (`train.input`) and the
    model's components; seeds Keras and sets the precision policy first.

    Raises:
        SpecError: a component rejected its arguments, or the batch does not
            fit the data.
    """
    import keras

    keras.utils.set_random_seed(spec.seed)
    keras.config.set_dtype_policy(spec.train.precision)
    dataset = build("datasets", spec.data, "data")
    train = spec.train
    rows = no_device = None
    if distribution is not None:
        rows = distribution.process_rows(train.batch_size)
        no_device = distribution.device_input_problem
    augmenter = None
    if spec.augment is not None:
        augmenter = build("augmenters", spec.augment, "augment", {"seed": spec.seed})
    if getattr(dataset, "keep_aspect", False):
        check_crops(augmenter)
    try:
        data_input = training_input(dataset, train.input, train.batch_size, spec.seed,
                                    train.steps_per_epoch, with_labels=train.probe,
                                    augmenter=augmenter, rows=rows, no_device=no_device)
    except DataError as exc:  # said under the spec's key, as validate says it
        raise SpecError(str(exc), "data") from None
    encoder = build("encoders", spec.encoder, "encoder")
    check_encoder_input(encoder, augmenter, data_input.image_shape)
    return Parts(
        dataset=dataset,
        input=data_input,
        augmenter=augmenter,
        encoder=encoder,
        head=build("heads", spec.head, "head"),
        loss=build("losses", spec.loss, "loss"),
    )


def check_crops(augmenter):
    """Checks that `augmenter` crops images kept at their aspect ratio to a
    fixed size (`crop_boxes` and `crop_size`, as `simclr` has).

    Raises:
        SpecError: it does not.
    """
    if augmenter is None or not hasattr(augmenter, "crop_boxes"):
        raise SpecError(
            "expected an augmenter that crops (such as simclr) for images kept at their "
            f"aspect ratio (data.keep_aspect), received {type(augmenter).__name__}",
            "augment",
        )
    if augmenter.crop_size is None:
        raise SpecError(
            "expected the side of the crops for images kept at their aspect ratio "
            "(data.keep_aspect), received none",
            "augment.size",
        )


def base_learning_rate(spec):
    """The optimizer's learning rate as the spec gives it (or its default)."""
    registry = get_registry("optimizers")
    entry, arguments = registry.check(spec.optimizer, "optimizer")
    if "learning_rate" in arguments:
        return arguments["learning_rate"]
    defaults = {p.name: p.default for p in registry.parameters(entry.name)}
    return defaults.get("learning_rate")


def schedule_context(spec, steps_per_epoch):
    """The arguments a schedule receives at run time (`kinds` names them):
    the base learning rate, steps per epoch, total steps and batch size."""
    return {
        "base_learning_rate": base_learning_rate(spec),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": steps_per_epoch * spec.train.epochs,
        "batch_size": spec.train.batch_size,
    }


def build_schedule(spec, steps_per_epoch):
    """The spec's learning-rate schedule, or None without one."""
    if spec.schedule is None:
        return None
    return build("schedules", spec.schedule, "schedule", schedule_context(spec, steps_per_epoch))


def build_optimizer(spec, steps_per_epoch):
    """Builds the optimizer, its learning rate replaced by the schedule.

    Returns:
        `(optimizer, schedule)`; `schedule` is None without a schedule.
    """
    entry, arguments = get_registry("optimizers").check(spec.optimizer, "optimizer")
    schedule = build_schedule(spec, steps_per_epoch)
    if schedule is not None:
        arguments["learning_rate"] = schedule
    try:
        return entry.obj(**arguments), schedule
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc), "optimizer") from exc


def build_model(spec, parts, distribution):
    """The spec's method (`method`, default `simclr`) around `parts`, adapted
    to `distribution` and compiled. Call under `distribution.scope()`.

    Returns:
        `(model, schedule)`.
    """
    optimizer, schedule = build_optimizer(spec, parts.steps_per_epoch)
    labels = parts.input.labels if parts.input.with_labels else None
    context = {
        "encoder": parts.encoder, "head": parts.head, "augmenter": parts.augmenter,
        "loss": parts.loss, "num_classes": int(labels.max()) + 1 if labels is not None else None,
        "input_layer": parts.input.input_layer(), "steps_per_epoch": parts.steps_per_epoch,
        "total_steps": parts.steps_per_epoch * spec.train.epochs,
    }
    model = build("methods", spec.method, "method", context)
    distribution.prepare(model)
    model.compile(optimizer=optimizer, jit_compile=spec.train.jit_compile)
    return model, schedule
