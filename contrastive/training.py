"""A pretraining run: parts built from a spec, `model.fit`, a run directory."""

import dataclasses
import json
import pathlib
import time

import numpy as np

from contrastive.errors import ContrastiveError, SpecError
from contrastive.inputs import fit_input, load_training_set
from contrastive.registry import build, get_registry


class LaunchRequired(ContrastiveError):
    """The run needs more processes than this one; the message says how."""


@dataclasses.dataclass
class Parts:
    """The components a spec describes, built and ready to assemble."""

    dataset: object
    train: object
    input_mode: str
    augmenter: object
    encoder: object
    head: object
    loss: object
    steps_per_epoch: int


def build_parts(spec):
    """Builds the dataset (and loads its training split as `train.input`
    says: `Arrays`, or `Files` to stream) and the model parts.

    Raises:
        SpecError: a component rejected its arguments, or the batch does not
            fit the data.
    """
    import keras

    keras.utils.set_random_seed(spec["seed"])
    keras.config.set_dtype_policy(spec["train"]["precision"])
    dataset = build("datasets", spec["data"], "data")
    input_mode, train = load_training_set(dataset, spec["train"]["input"])
    batch_size = spec["train"]["batch_size"]
    if batch_size > len(train):
        raise SpecError(
            f"expected at most the {len(train)} training images, received {batch_size}",
            "train.batch_size",
        )
    steps = spec["train"]["steps_per_epoch"] or len(train) // batch_size
    augmenter = None
    if spec["augment"] is not None:
        augmenter = build("augmenters", spec["augment"], "augment", {"seed": spec["seed"]})
    return Parts(
        dataset=dataset,
        train=train,
        input_mode=input_mode,
        augmenter=augmenter,
        encoder=build("encoders", spec["encoder"], "encoder"),
        head=build("heads", spec["head"], "head"),
        loss=build("losses", spec["loss"], "loss"),
        steps_per_epoch=steps,
    )


def build_optimizer(spec, steps_per_epoch):
    """Builds the optimizer, its learning rate replaced by the schedule.

    Returns:
        `(optimizer, schedule)`; `schedule` is None without a schedule.
    """
    registry = get_registry("optimizers")
    entry, arguments = registry.check(spec["optimizer"], "optimizer")
    schedule = None
    if spec["schedule"] is not None:
        train = spec["train"]
        context = {
            "base_learning_rate": arguments.get(
                "learning_rate", _default(registry, entry.name, "learning_rate")
            ),
            "steps_per_epoch": steps_per_epoch,
            "total_steps": steps_per_epoch * train["epochs"],
            "batch_size": train["batch_size"],
        }
        schedule = build("schedules", spec["schedule"], "schedule", context)
        arguments["learning_rate"] = schedule
    try:
        return entry.obj(**arguments), schedule
    except (TypeError, ValueError) as exc:
        raise SpecError(str(exc), "optimizer") from exc


def _default(registry, name, argument):
    for param in registry.parameters(name):
        if param.name == argument:
            return param.default
    return None


def default_run_dir(spec):
    """`runs/<spec file stem>-<YYYYmmdd-HHMMSS>`, unique for each run."""
    stem = pathlib.Path(spec.file).stem if spec.file != "<spec>" else "run"
    return pathlib.Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def prepare_run_dir(path):
    """Creates the run directory; refuses one that already holds a run.

    Raises:
        SpecError: the directory exists and is not empty (a run there is
            never overwritten).
    """
    path = pathlib.Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise SpecError(
            f"{path} already exists and is not empty; choose another --out "
            "(runs are never overwritten)",
            "output.dir",
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def train(spec, out_dir=None, log=print, resume=False, argv=None):
    """Pretrains SimCLR as `spec` says, then evaluates h; returns the results.

    Writes into the run directory: `spec.yaml` (the resolved spec),
    `metrics.csv`, `curves.png`, TensorBoard logs under `tensorboard/`,
    atomic checkpoints (`checkpoint.json` naming the newest
    `checkpoints/epoch-NNNN.weights.h5`), `encoder.keras` (float32 images in
    [0, 1] to h), `encoder_head1.keras` (the same, then the head's first
    layer: SimCLR v2's fine-tuning start) and `results.json`.

    Args:
        spec: a `contrastive.spec.Spec`.
        out_dir: the run directory; default `output.dir` of the spec.
        log: where progress lines go.
        resume: continue the run in `out_dir` from its last checkpoint, with
            the optimizer state, schedule position, epoch, data order and
            random-generator states, so that the final weights equal those
            of an uninterrupted run.
        argv: this process's command line, from which the torchrun command
            of a multi-process torch run is made.

    Returns:
        A dict: run directory, epochs, steps, final loss, seconds, images per
        second, and the evaluation accuracies.

    Raises:
        FloatingPointError: the loss became NaN or infinite; the last good
            checkpoint is kept.
        LaunchRequired: a torch `ddp` run must be started with torchrun;
            the message holds the exact command.
    """
    import keras

    from contrastive.callbacks import Checkpoint, StopOnNonFinite
    from contrastive.checkpoints import read_state
    from contrastive.distribute import from_spec
    from contrastive.model import SimCLR

    distribution = from_spec(spec["distribute"])
    distribution.check_batch_size(spec["train"]["batch_size"])
    command = distribution.launch_command(list(argv or ["train", spec.file]))
    if command:
        raise LaunchRequired(f"this run has {distribution.num_replicas} processes; start it with: {command}")
    chief = distribution.is_chief
    if not chief:
        log = _silent
    if resume:
        run_dir = pathlib.Path(out_dir)
        state = read_state(run_dir)
    elif not chief:
        run_dir = pathlib.Path(out_dir or spec["output"]["dir"] or default_run_dir(spec))
        state = None
    else:
        run_dir = prepare_run_dir(out_dir or spec["output"]["dir"] or default_run_dir(spec))
        state = None
        (run_dir / "spec.yaml").write_text(
            f"# resolved from {spec.file}\n" + spec.to_yaml(), encoding="utf-8"
        )
    epochs = spec["train"]["epochs"]
    first_epoch = state["epoch"] if state is not None else 0
    with distribution.scope():
        parts = build_parts(spec)
        optimizer, schedule = build_optimizer(spec, parts.steps_per_epoch)
        labels = parts.train.labels if spec["train"]["probe"] else None
        num_classes = int(labels.max()) + 1 if labels is not None else None
        batches, resident = fit_input(
            parts.input_mode, parts.train, spec["train"]["batch_size"], spec["seed"],
            parts.steps_per_epoch, first_epoch, epochs, with_labels=labels is not None,
        )
        model = SimCLR(parts.encoder, parts.head, parts.augmenter, parts.loss,
                       num_classes=num_classes, resident=resident)
        distribution.prepare(model)
        model.compile(optimizer=optimizer, jit_compile=spec["train"]["jit_compile"])
    if distribution.num_replicas > 1:
        log(distribution.describe())
    if state is not None:
        with distribution.scope():
            _restore(model, parts, state, run_dir)
        _truncate_metrics(run_dir / "metrics.csv", first_epoch)
        log(f"resuming {run_dir} after epoch {first_epoch} of {epochs}")
    log(
        f"backend {keras.backend.backend()}: {len(parts.train)} images "
        f"({parts.input_mode} input), batch {spec['train']['batch_size']}, "
        f"{parts.steps_per_epoch} steps x {epochs} epochs -> {run_dir}"
    )
    peak = getattr(schedule, "peak_learning_rate", None)
    if peak is not None:
        log(f"peak learning rate {float(peak):.6g}")
        if chief:
            _merge_json(run_dir / "results.json", {"peak_learning_rate": float(peak)})
    callbacks = [StopOnNonFinite()]
    if hasattr(batches, "follow"):
        callbacks.append(batches.follow())
    if chief:
        callbacks += [
            keras.callbacks.CSVLogger(str(run_dir / "metrics.csv"), append=first_epoch > 0),
            Checkpoint(run_dir, spec["output"]["checkpoint_every"], epochs, first_epoch),
        ]
    monitor = _knn_monitor(spec, parts)
    if monitor is not None:
        callbacks.insert(0, monitor)
    if spec["output"]["tensorboard"] and chief:
        board = _tensorboard(run_dir)
        if board is None:
            log("TensorBoard logs skipped: tensorflow and tensorboard are not both installed")
        else:
            callbacks.append(board)
    start = time.perf_counter()
    with distribution.scope():
        history = model.fit(
            batches,
            epochs=epochs,
            initial_epoch=first_epoch,
            steps_per_epoch=parts.steps_per_epoch if parts.input_mode == "stream" else None,
            shuffle=False,  # the batches shuffle themselves, reproducibly
            verbose=spec["train"]["verbose"] if chief else 0,
            callbacks=callbacks,
        )
    seconds = time.perf_counter() - start
    if not chief:
        return {"run_dir": str(run_dir), "chief": False}
    if spec["output"]["plot"]:
        from contrastive.plots import plot_metrics

        plot_metrics(run_dir / "metrics.csv", run_dir / "curves.png")
    losses = history.history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        last = read_state(run_dir)
        kept = f"; the last good checkpoint is {run_dir / last['weights']}" if last else ""
        raise FloatingPointError(
            f"the loss became {losses[-1]} in epoch {first_epoch + len(losses)}; "
            f"training stopped{kept}"
        )
    images_seen = parts.steps_per_epoch * spec["train"]["batch_size"] * len(losses)
    results = {
        "run_dir": str(run_dir),
        "backend": keras.backend.backend(),
        "epochs": first_epoch + len(losses),
        "steps": parts.steps_per_epoch * (first_epoch + len(losses)),
        "final_loss": float(losses[-1]) if losses else None,
        "seconds": round(seconds, 2),
        "images_per_second": round(images_seen / seconds, 1) if seconds else None,
    }
    if peak is not None:
        results["peak_learning_rate"] = float(peak)
    if spec["output"]["save_encoder"]:
        save_encoder(parts.encoder, parts.train.image_shape, run_dir / "encoder.keras")
        save_encoder(parts.encoder, parts.train.image_shape,
                     run_dir / "encoder_head1.keras", head=parts.head)
    results["eval"] = evaluate(spec, parts, log)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def resume(run_dir, log=print):
    """Continues the run in `run_dir` from its last checkpoint. See `train`.

    Raises:
        SpecError: `run_dir` holds no resolved spec or no checkpoint.
    """
    from contrastive.checkpoints import read_state
    from contrastive.spec import load_spec

    run_dir = pathlib.Path(run_dir)
    if not (run_dir / "spec.yaml").exists():
        raise SpecError(f"{run_dir}: expected a run directory with a spec.yaml", "--resume")
    spec = load_spec(run_dir / "spec.yaml")
    if read_state(run_dir) is None:
        log(f"{run_dir} has no checkpoint yet: starting from epoch 0")
    return train(spec, out_dir=run_dir, log=log, resume=True)


def _restore(model, parts, state, run_dir):
    """Builds the model and its optimizer, then loads a checkpoint: weights,
    optimizer state and random-generator states."""
    from contrastive.callbacks import random_states

    model(np.zeros((2, *parts.train.image_shape), np.uint8), training=True)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(str(run_dir / state["weights"]))
    variables = random_states(model)
    if len(variables) != len(state["random_states"]):
        raise SpecError(
            f"the checkpoint holds {len(state['random_states'])} random-generator "
            f"states, the model built from spec.yaml has {len(variables)}",
            "--resume",
        )
    for variable, value in zip(variables, state["random_states"]):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _truncate_metrics(path, epochs):
    """Keeps the header and the rows of the first `epochs` epochs: those a
    resumed run repeats are written again."""
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = lines[:1] + [line for line in lines[1:] if int(line.split(",", 1)[0]) < epochs]
    path.write_text("".join(kept), encoding="utf-8")


def _knn_monitor(spec, parts):
    settings = spec["eval"]
    if not settings["monitor_every"] or parts.train.labels is None:
        return None
    test = _held_out(spec, parts)
    if test is None or test.labels is None:
        return None
    from contrastive.evaluation.monitor import KnnMonitor

    return KnnMonitor(parts.train, test, settings["monitor_every"],
                      k=settings["knn"]["k"], temperature=settings["knn"]["temperature"])


def _tensorboard(run_dir):
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tensorboard") is None:
        return None
    import keras

    return keras.callbacks.TensorBoard(str(run_dir / "tensorboard"), write_graph=False)


def _held_out(spec, parts):
    if spec["eval"]["data"] is not None:
        return build("datasets", spec["eval"]["data"], "eval.data").load("train")
    if "test" in parts.dataset.splits:
        return parts.dataset.load("test")
    return None


def _silent(line):
    del line


def _merge_json(path, values):
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data.update(values)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def save_encoder(encoder, image_shape, path, head=None):
    """Saves the encoder as a `.keras` model: float32 images in [0, 1] to h.

    With `head`, saves instead the encoder followed by the head's first
    layer and its ReLU (the representation SimCLR v2 fine-tunes from), when
    the head has hidden layers (`head.hidden`); otherwise writes nothing.
    """
    import keras

    inputs = keras.Input(shape=tuple(image_shape), dtype="float32", name="images")
    outputs = encoder(inputs, training=False)
    name = "encoder"
    if head is not None:
        hidden = getattr(head, "hidden", None)
        if not hidden:
            return
        outputs = keras.layers.Activation("relu")(hidden[0](outputs, training=False))
        name = "encoder_head1"
    keras.Model(inputs, outputs, name=name).save(str(path))


def evaluate(spec, parts, log=print):
    """kNN and linear evaluation of h on held-out labelled data.

    Uses `eval.data`, else the `test` split of `data`. Skipped (an empty
    result) when there are no labels or no held-out split.
    """
    from contrastive.evaluation import features_of, knn_accuracy, linear_accuracy

    settings = spec["eval"]
    wanted = settings["knn"]["enabled"] or settings["linear"]["enabled"]
    if not wanted:
        return {}
    test = _held_out(spec, parts)
    if test is None:
        log("evaluation skipped: the dataset has no test split and eval.data is not set")
        return {}
    train = parts.train
    if train.labels is None or test.labels is None:
        log("evaluation skipped: the data has no labels")
        return {}
    train_h = features_of(parts.encoder, train)
    test_h = features_of(parts.encoder, test)
    results = {}
    if settings["knn"]["enabled"]:
        knn = settings["knn"]
        results["knn_accuracy"] = knn_accuracy(
            train_h, train.labels, test_h, test.labels, k=knn["k"],
            temperature=knn["temperature"],
        )
    if settings["linear"]["enabled"]:
        linear = settings["linear"]
        results["linear_accuracy"] = linear_accuracy(
            train_h, train.labels, test_h, test.labels, epochs=linear["epochs"],
            learning_rate=linear["learning_rate"], batch_size=linear["batch_size"],
            seed=spec["seed"],
        )
    for name, value in results.items():
        log(f"{name}: {value:.4f}")
    return results
