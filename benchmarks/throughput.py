"""Benchmark: source images per second of the full SimCLR train step, against
the floor of the same encoder and head on ready-made views.

Not a test. Both are measured in the same process with `model.fit` on the
current backend: one epoch of warm-up (compilation), then one timed epoch.

- full step: on-device augmentation (two views), encoder, head, the spec's
  loss and optimizer; the input is uint8 source images.
- floor: the same encoder and head built anew, forward and backward on 2N
  ready-made float views with a trivial loss (mean of z squared), SGD.

    KERAS_BACKEND=jax python benchmarks/throughput.py benchmarks/cifar10.yaml \
        --batch-size 512 --steps 50 --json

On torch, `--jit true` traces the step (`contrastive.torch_step`;
compiled on CUDA devices), `auto` (the default) and `false` do not; with
the traced step compiled, one more step checks the compiled graph
against the uncompiled one on the same state and draws
(`compiled_vs_traced`: the largest difference of an updated variable,
relative to its largest value).

Without SPEC it uses the CIFAR ResNet-18 of `benchmarks/cifar10.yaml` with
random images, so it needs no data.
"""

import argparse
import json
import os
import pathlib
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = pathlib.Path(__file__).resolve().parent


def _timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall time of each epoch; the epoch-end logs force a device sync."""

        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float(logs["loss"])
            self.seconds.append(time.perf_counter() - self.start)

    return EpochTimer()


def _floor_model(encoder, head):
    import keras
    from keras import ops

    from contrastive.torch_step import TracedTraining

    class Floor(TracedTraining, keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.encoder, self.head = encoder, head

        def call(self, views, training=False):
            return self.head(self.encoder(views, training=training), training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return ops.mean(ops.square(ops.cast(y_pred, "float32")))

    return Floor()


def measure(spec, batch_size, steps, jit_compile, floor=True):
    """Returns the full-step and (with `floor`) floor figures for `spec`."""
    import keras
    import numpy as np

    from contrastive import torch_speed
    from contrastive.model import SimCLR
    from contrastive.registry import build
    from contrastive.training import build_optimizer

    keras.utils.set_random_seed(spec.seed)
    keras.config.set_dtype_policy(spec.train.precision)
    size = spec.data.get("size", 32)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch_size * steps, size, size, 3), dtype=np.uint8)

    augmenter = build("augmenters", spec.augment, "augment", {"seed": spec.seed})
    model = SimCLR(build("encoders", spec.encoder, "encoder"), build("heads", spec.head, "head"),
                   augmenter, build("losses", spec.loss, "loss"))
    optimizer, _ = build_optimizer(spec, steps)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    timer = _timer()
    model.fit(images, epochs=2, batch_size=batch_size, shuffle=False, verbose=0,
              callbacks=[torch_speed.callback(), timer])
    full = batch_size * steps / timer.seconds[-1]
    result = {
        "backend": keras.backend.backend(),
        "device": _device(),
        "precision": spec.train.precision,
        "batch_size": batch_size,
        "image_size": size,
        "steps": steps,
        "jit_compile": jit_compile,
        "full_images_per_second": round(full, 1),
        "first_epoch_seconds": round(timer.seconds[0], 2),
    }
    try:
        _traced_check(model, result)
    except Exception as exc:  # noqa: BLE001 (a figure of its own; the timing stands)
        first = str(exc).strip().splitlines()
        result["compiled_vs_traced"] = f"check failed: {type(exc).__name__}: {first[0] if first else ''}"
    if not floor:
        return result

    views = rng.random((2 * batch_size * steps, size, size, 3), dtype=np.float32)
    floor = _floor_model(build("encoders", spec.encoder, "encoder"), build("heads", spec.head, "head"))
    floor.compile(optimizer=keras.optimizers.SGD(0.01), jit_compile=jit_compile)
    timer = _timer()
    floor.fit(views, epochs=2, batch_size=2 * batch_size, shuffle=False, verbose=0,
              callbacks=[torch_speed.callback(), timer])
    floor_rate = batch_size * steps / timer.seconds[-1]
    result.update(floor_images_per_second=round(floor_rate, 1), ratio=round(full / floor_rate, 4))
    return result


def _traced_check(model, result):
    """With `contrastive.torch_step`'s traced step: whether it was used, and
    the compiled graph against the uncompiled one on one more step (same
    state, the last batch, the same draws)."""
    from contrastive import torch_step

    step = model.train_function
    result["traced_step"] = isinstance(step, torch_step.TracedStep) and step.failed is None
    if not result["traced_step"]:
        if isinstance(step, torch_step.TracedStep):
            result["traced_step_failure"] = step.failed
        return

    entry = step.graphs[torch_step._signature(step.last_batch)]
    result["traced_step_compiled"] = entry["compiled"]
    if not entry["compiled"]:
        return
    values = [torch_step._values(group) for group in entry["groups"]]
    batch = step.last_batch
    noise = torch_step.draw(entry["slots"])

    def copies():
        return [[v.clone() for v in group] for group in values]

    # The optimizer updates the inputs in place; what the step assigns
    # comes out: both are compared.
    traced_inputs, compiled_inputs = copies(), copies()
    traced = entry["graph"](*traced_inputs, batch, noise)
    compiled = entry["run"](*compiled_inputs, batch, noise)
    worst = 0.0
    for a_group, b_group in zip(traced_inputs + list(traced), compiled_inputs + list(compiled)):
        for a, b in zip(a_group, b_group):
            a, b = a.float(), b.float()
            scale = float(a.abs().max()) if a.numel() else 0.0
            if scale > 0:
                worst = max(worst, float((a - b).abs().max()) / scale)
    result["compiled_vs_traced"] = worst


def _device():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return str(jax.devices()[0].device_kind)
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return gpus[0].name if gpus else platform.processor() or "cpu"


def main():
    from contrastive.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(HERE / "cifar10.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=50, help="timed steps of each")
    parser.add_argument("--jit", choices=("auto", "true", "false"), default="auto",
                        help="jit_compile of both models")
    parser.add_argument("--no-jit", action="store_true", help="the same as --jit false")
    parser.add_argument("--no-floor", action="store_true", help="time the full step only")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    args = parser.parse_args()
    spec = load_spec(args.spec, args.overrides)
    jit = {"auto": "auto", "true": True, "false": False}["false" if args.no_jit else args.jit]
    result = measure(spec, args.batch_size, args.steps, jit, floor=not args.no_floor)
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
