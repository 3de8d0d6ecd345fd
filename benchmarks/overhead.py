"""Benchmark: milliseconds per training step of the spec's encoder and head
through `model.fit` on the current backend, against the same architecture
written as a plain `torch.nn.Module` in the same process (torch only), and
the augmenter alone.

Not a test. At the default sizes (4 views of 8x8 a step) the arithmetic is
negligible, so the time is framework overhead: the CPU proxy for the GPU
gap of Keras on torch. `--batch-size 512 --size 32 --precision
mixed_bfloat16` measures the same at full size (as `gpu.sh` does).

    KERAS_BACKEND=torch python benchmarks/overhead.py --json
    KERAS_BACKEND=torch python benchmarks/overhead.py --batch-size 512 \
        --size 32 --precision mixed_bfloat16 --compile --json

On torch with the reference architecture, Keras and plain torch take
turns (`torch_ab.py`'s variants): a warm-up round each, then `--rounds`
rounds of `--steps` steps each, the order reversed every other round, so
that load from other processes hits both alike; the medians of each and
the median of the per-round ratios. Elsewhere, Keras alone: one warm-up
epoch (compilation), then three timed epochs; the median epoch. Plain
torch under `torch.compile` (`--compile`): three warm-up steps, then three
rounds, the median round.
The plain module is the CIFAR ResNet-18 + MLP head of
`benchmarks/torch_reference.py`, so a spec with another encoder has no
torch reference. Both train on ready-made views with the floor's trivial
loss (mean of z squared) and SGD, as `throughput.py`'s floor does.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def keras_step_ms(spec, batch_size, size, steps, jit_compile):
    """Median milliseconds per step of encoder + head through `fit`."""
    import keras
    import numpy as np

    from contrastive import torch_speed
    from contrastive.registry import build
    from throughput import _floor_model, _timer

    keras.utils.set_random_seed(spec["seed"])
    keras.config.set_dtype_policy(spec["train"]["precision"])
    views = np.random.default_rng(0).random((2 * batch_size * steps, size, size, 3), dtype=np.float32)
    model = _floor_model(build("encoders", spec["encoder"], "encoder"), build("heads", spec["head"], "head"))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=jit_compile)
    timer = _timer()
    # torch_speed.callback(): the torch speed-ups that act on built
    # variables (a no-op on other backends; CONTRASTIVE_TORCH_FAST=0: none).
    model.fit(views, epochs=4, batch_size=2 * batch_size, shuffle=False, verbose=0,
              callbacks=[torch_speed.callback(), timer])
    return statistics.median(timer.seconds[1:]) * 1000 / steps


def augment_ms(spec, batch_size, size, repeats):
    """Median milliseconds of one augmented view of `batch_size` images,
    compiled as the train step compiles it (see `augmentations.py`)."""
    import numpy as np
    from keras import ops

    from augmentations import compiled
    from contrastive.registry import build

    layer = build("augmenters", spec["augment"], "augment", {"seed": spec["seed"]})
    images = ops.convert_to_tensor(
        np.random.default_rng(0).random((batch_size, size, size, 3), dtype=np.float32))
    run = compiled(layer)
    run(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def interleaved(spec, args, jit, cifar_stem):
    """Keras and plain torch taking turns (see the module's description)."""
    from contrastive import torch_speed, torch_switches
    from torch_ab import keras_variant, torch_variant

    on = torch_switches.fast_switches()
    switches = {name: name in on for name in torch_speed.SWITCHES}
    keras_run, _ = keras_variant(spec, switches, args.batch_size, args.size, args.steps, jit)
    runs = {"keras": keras_run,
            "torch": torch_variant(args.batch_size, args.size, args.steps,
                                   spec["train"]["precision"], cifar_stem=cifar_stem)}
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for r in range(args.rounds):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            times[name].append(runs[name]())
    return {
        "rounds": args.rounds,
        "keras_ms_per_step": round(statistics.median(times["keras"]), 3),
        "torch_ms_per_step": round(statistics.median(times["torch"]), 3),
        "ratio_keras_to_torch": round(statistics.median(
            k / t for k, t in zip(times["keras"], times["torch"])), 3),
    }


def is_reference_architecture(spec):
    """True when the spec's encoder and head are what `torch_reference`
    builds: `resnet18` (CIFAR stem, width 1) and a 2-layer `mlp`."""
    encoder, head = spec["encoder"], spec["head"]
    return (
        encoder.get("name") == "resnet18"
        and encoder.get("width_multiplier", 1) == 1
        and encoder.get("base_width", 64) == 64
        and head.get("name") == "mlp"
        and head.get("num_layers", 2) == 2
        and head.get("hidden_dim") in (None, 512)
        and head.get("batch_norm", True)
    )


def measure(spec, args, emit=lambda result: None):
    """Returns the figures; `emit` receives the figures so far after each
    measurement, so that a run stopped part-way keeps what it measured."""
    import keras

    from throughput import _device

    backend = keras.backend.backend()
    result = {
        "backend": backend,
        "device": _device(),
        "precision": spec["train"]["precision"],
        "batch_size": args.batch_size,
        "views_per_step": 2 * args.batch_size,
        "image_size": args.size,
        "steps": args.steps,
        "encoder": spec["encoder"]["name"],
    }
    jit = "auto" if not args.no_jit else False
    cifar_stem = spec["encoder"].get("cifar_stem")
    shape = {"cifar_stem": args.size <= 32 if cifar_stem is None else cifar_stem}
    if backend == "torch" and is_reference_architecture(spec):
        result.update(interleaved(spec, args, jit, shape["cifar_stem"]))
        _rates(result, args.batch_size)
        emit(result)
    else:
        result["keras_ms_per_step"] = round(keras_step_ms(
            spec, args.batch_size, args.size, args.steps, jit), 3)
        _rates(result, args.batch_size)
        emit(result)
    if "torch_ms_per_step" in result:
        from torch_reference import step_milliseconds

        if args.compile:
            compiled = step_milliseconds(args.batch_size, args.size, args.steps,
                                         spec["train"]["precision"], compile=True, **shape)
            result["torch_compile_ms_per_step"] = round(compiled, 3)
            result["ratio_keras_to_torch_compile"] = round(result["keras_ms_per_step"] / compiled, 3)
            _rates(result, args.batch_size)
            emit(result)
    if spec["augment"] is not None and not args.no_augment:
        result["augment_ms_per_view"] = round(augment_ms(spec, args.batch_size, args.size, 5), 3)
    emit(result)
    return result


def _rates(result, batch_size):
    for key in ("keras", "torch", "torch_compile"):
        if f"{key}_ms_per_step" in result:
            result[f"{key}_images_per_second"] = round(
                batch_size * 1000 / result[f"{key}_ms_per_step"], 1)


def main(argv=None):
    from contrastive.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(HERE / "cifar10.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--batch-size", type=int, default=2, help="source images (views: twice)")
    parser.add_argument("--size", type=int, default=8, help="image side")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (torch)")
    parser.add_argument("--precision", default=None, help="default: the spec's train.precision")
    parser.add_argument("--compile", action="store_true", help="also time the plain module under torch.compile")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--no-jit", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    spec = load_spec(args.spec, overrides)
    def emit(result):
        if args.output:
            pathlib.Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    result = measure(spec, args, emit)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:>30}: {value}")


if __name__ == "__main__":
    main()
