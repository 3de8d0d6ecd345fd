"""A pretraining run: parts built from a spec, `model.fit`, a run directory."""

import dataclasses
import json
import pathlib
import time

import numpy as np

from contrastive.errors import SpecError
from contrastive.registry import build, get_registry


@dataclasses.dataclass
class Parts:
    """The components a spec describes, built and ready to assemble."""

    dataset: object
    train: object
    augmenter: object
    encoder: object
    head: object
    loss: object
    steps_per_epoch: int


def build_parts(spec):
    """Builds the dataset (and loads its training split) and the model parts.

    Raises:
        SpecError: a component rejected its arguments, or the batch does not
            fit the data.
    """
    import keras

    keras.utils.set_random_seed(spec["seed"])
    keras.config.set_dtype_policy(spec["train"]["precision"])
    dataset = build("datasets", spec["data"], "data")
    train = dataset.load("train")
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


def train(spec, out_dir=None, log=print):
    """Pretrains SimCLR as `spec` says, then evaluates h; returns the results.

    Writes into the run directory: `spec.yaml` (the resolved spec),
    `metrics.csv`, `encoder.keras` (images float32 in [0, 1] to h) and
    `results.json`.

    Args:
        spec: a `contrastive.spec.Spec`.
        out_dir: the run directory; default `output.dir` of the spec.
        log: where progress lines go.

    Returns:
        A dict: run directory, epochs, steps, final loss, seconds, images per
        second, and the evaluation accuracies.
    """
    import keras

    from contrastive.batches import ShuffledBatches
    from contrastive.model import SimCLR

    run_dir = prepare_run_dir(out_dir or spec["output"]["dir"] or default_run_dir(spec))
    (run_dir / "spec.yaml").write_text(
        f"# resolved from {spec.file}\n" + spec.to_yaml(), encoding="utf-8"
    )
    parts = build_parts(spec)
    optimizer, schedule = build_optimizer(spec, parts.steps_per_epoch)
    model = SimCLR(parts.encoder, parts.head, parts.augmenter, parts.loss)
    jit = spec["train"]["jit_compile"]
    model.compile(optimizer=optimizer, jit_compile=jit)
    log(
        f"backend {keras.backend.backend()}: {len(parts.train)} images, batch "
        f"{spec['train']['batch_size']}, {parts.steps_per_epoch} steps x "
        f"{spec['train']['epochs']} epochs -> {run_dir}"
    )
    peak = getattr(schedule, "peak_learning_rate", None)
    if peak is not None:
        log(f"peak learning rate {float(peak):.6g}")
    batches = ShuffledBatches(
        parts.train.images,
        spec["train"]["batch_size"],
        seed=spec["seed"],
        steps_per_epoch=parts.steps_per_epoch,
    )
    start = time.perf_counter()
    history = model.fit(
        batches,
        epochs=spec["train"]["epochs"],
        verbose=spec["train"]["verbose"],
        callbacks=[
            keras.callbacks.CSVLogger(str(run_dir / "metrics.csv")),
            keras.callbacks.TerminateOnNaN(),
        ],
    )
    seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    if losses and not np.isfinite(losses[-1]):
        raise FloatingPointError(
            f"the loss became {losses[-1]} at epoch {len(losses)}; training stopped"
        )
    images_seen = parts.steps_per_epoch * spec["train"]["batch_size"] * len(losses)
    results = {
        "run_dir": str(run_dir),
        "backend": keras.backend.backend(),
        "epochs": len(losses),
        "steps": parts.steps_per_epoch * len(losses),
        "final_loss": float(losses[-1]) if losses else None,
        "seconds": round(seconds, 2),
        "images_per_second": round(images_seen / seconds, 1) if seconds else None,
    }
    if spec["output"]["save_encoder"]:
        save_encoder(parts.encoder, parts.train.images.shape[1:], run_dir / "encoder.keras")
    results["eval"] = evaluate(spec, parts, log)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return results


def save_encoder(encoder, image_shape, path):
    """Saves the encoder as a `.keras` model: float32 images in [0, 1] to h."""
    import keras

    inputs = keras.Input(shape=tuple(image_shape), dtype="float32", name="images")
    model = keras.Model(inputs, encoder(inputs, training=False), name="encoder")
    model.save(str(path))


def evaluate(spec, parts, log=print):
    """kNN and linear evaluation of h on held-out labelled data.

    Uses `eval.data`, else the `test` split of `data`. Skipped (an empty
    result) when there are no labels or no held-out split.
    """
    from contrastive.evaluation import encode, knn_accuracy, linear_accuracy

    settings = spec["eval"]
    wanted = settings["knn"]["enabled"] or settings["linear"]["enabled"]
    if not wanted:
        return {}
    if settings["data"] is not None:
        test = build("datasets", settings["data"], "eval.data").load("train")
    elif "test" in parts.dataset.splits:
        test = parts.dataset.load("test")
    else:
        log("evaluation skipped: the dataset has no test split and eval.data is not set")
        return {}
    train = parts.train
    if train.labels is None or test.labels is None:
        log("evaluation skipped: the data has no labels")
        return {}
    train_h = encode(parts.encoder, train.images)
    test_h = encode(parts.encoder, test.images)
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
