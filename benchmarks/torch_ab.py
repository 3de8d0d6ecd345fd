"""Benchmark: the torch speed switches (`contrastive.torch_speed`) against
each other and against plain torch, as ratios measured in one process.

Not a test. Every variant is a model of its own built with its switches
(`--variant name=switch,switch`; `none`, `default` (what the environment
turns on by default) or `all`; `jit` among them: the traced, compiled
step of `contrastive.torch_step`, its compilation in the warm-up round);
the variants and the
plain-torch reference (`torch_reference.py`, same architecture) take turns,
one round of `--steps` steps each through `fit` (one epoch), for `--rounds`
rounds, order reversed every other round, so that load from other
processes hits all of them alike. Prints each one's median milliseconds a
step and its median per-round ratio to the first variant and to plain
torch. At the default sizes (4 views of 8x8, as `overhead.py`) the
arithmetic is small and the time is framework overhead. `--full` times the
whole SimCLR step instead (augmentation of uint8 images, the spec's loss,
optimizer and schedule; no plain-torch reference).

    KERAS_BACKEND=torch python benchmarks/torch_ab.py --precision float32 \\
        --variant base=none --variant fast=all
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


def keras_variant(spec, switches, batch_size, size, steps, jit_compile, optimizer="sgd"):
    """Returns `run()`: one timed epoch of `steps` steps of encoder + head
    through `fit`, milliseconds a step."""
    import keras
    import numpy as np

    from contrastive import torch_speed
    from contrastive.registry import build
    from throughput import _floor_model

    with torch_speed.override(**switches):
        keras.utils.set_random_seed(spec["seed"])
        keras.config.set_dtype_policy(spec["train"]["precision"])
        model = _floor_model(build("encoders", spec["encoder"], "encoder"),
                             build("heads", spec["head"], "head"))
        if optimizer == "lars":
            from contrastive.optimizers.lars import LARS

            opt = LARS(0.1, weight_decay=1e-4)
        else:
            opt = keras.optimizers.SGD(0.01, momentum=0.9)
        model.compile(optimizer=opt, jit_compile=jit_compile)
    views = np.random.default_rng(0).random((2 * batch_size * steps, size, size, 3), dtype=np.float32)

    return _timed_fit(model, views, 2 * batch_size, steps, switches), model


def keras_full_variant(spec, switches, batch_size, size, steps, jit_compile):
    """Returns `run()`: one timed epoch of `steps` full SimCLR steps (two
    augmented views, encoder, head, the spec's loss, optimizer and
    schedule) on uint8 images through `fit`, milliseconds a step."""
    import keras
    import numpy as np

    from contrastive import torch_speed
    from contrastive.model import SimCLR
    from contrastive.registry import build
    from contrastive.training import build_optimizer

    with torch_speed.override(**switches):
        keras.utils.set_random_seed(spec["seed"])
        keras.config.set_dtype_policy(spec["train"]["precision"])
        augmenter = build("augmenters", spec["augment"], "augment", {"seed": spec["seed"]})
        model = SimCLR(build("encoders", spec["encoder"], "encoder"), build("heads", spec["head"], "head"),
                       augmenter, build("losses", spec["loss"], "loss"))
        optimizer, _ = build_optimizer(spec, steps)
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
    images = np.random.default_rng(0).integers(0, 256, (batch_size * steps, size, size, 3), dtype=np.uint8)

    return _timed_fit(model, images, batch_size, steps, switches), model


def _timed_fit(model, x, batch_size, steps, switches):
    """Returns `run()`: one epoch of `fit` on `x` under `switches`,
    milliseconds a step (the loss read back, so the time includes the
    device's work)."""
    import keras

    from contrastive import torch_speed

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            float(logs["loss"])
            self.ms = (time.perf_counter() - self.start) * 1000 / steps

    def run():
        timer = Timer()
        with torch_speed.override(**switches):
            model.fit(x, epochs=1, batch_size=batch_size, shuffle=False, verbose=0,
                      callbacks=[torch_speed.callback(), timer])
        return timer.ms

    return run


def torch_variant(batch_size, size, steps, precision, cifar_stem=True):
    import torch

    from torch_reference import build

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(cifar_stem=cifar_stem).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    views = torch.rand(2 * batch_size, 3, size, size, device=device).to(
        memory_format=torch.channels_last)
    autocast = precision in ("bfloat16", "mixed_bfloat16")

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            z = model(views)
        loss = z.float().square().mean()
        loss.backward()
        optimizer.step()
        return loss

    def run():
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        float(loss.detach())
        return (time.perf_counter() - start) * 1000 / steps

    return run


def parse_variant(text, jit_default):
    """`(switches, jit)` of a variant's text (`jit` among the names turns
    the traced step on)."""
    names = [t.strip() for t in text.split(",")]
    jit = "jit" in names or jit_default
    return parse_switches(",".join(n for n in names if n != "jit") or "none"), jit


def parse_switches(text):
    from contrastive.torch_speed import SWITCHES

    if text in ("none", ""):
        return {name: False for name in SWITCHES}
    if text == "all":
        return {name: True for name in SWITCHES}
    if text == "default":
        from contrastive.torch_speed import OPT_IN

        return {name: name not in OPT_IN for name in SWITCHES}
    wanted = {t.strip() for t in text.split(",")}
    return {name: name in wanted for name in SWITCHES}


def main(argv=None):
    from contrastive.spec import load_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(HERE / "cifar10.yaml"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--variant", action="append", default=[],
                        help="name=switches (comma-separated, `none`, `default` or `all`)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--optimizer", choices=("sgd", "lars"), default="sgd")
    parser.add_argument("--jit", action="store_true", help="jit_compile=True (torch.compile)")
    parser.add_argument("--full", action="store_true",
                        help="the full SimCLR step (augmentation, loss, the spec's optimizer) "
                             "on uint8 images instead of encoder + head on ready views")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    overrides = list(args.overrides)
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    spec = load_spec(args.spec, overrides)

    import torch

    torch.set_num_threads(args.threads)
    variants = args.variant or ["base=none", "fast=default"]
    runs = {}
    for item in variants:
        name, _, text = item.partition("=")
        switches, jit = parse_variant(text, bool(args.jit))
        if args.full:
            runs[name], _ = keras_full_variant(spec, switches, args.batch_size,
                                               args.size, args.steps, jit)
        else:
            runs[name], _ = keras_variant(spec, switches, args.batch_size,
                                          args.size, args.steps, jit, args.optimizer)
    if not args.no_reference and not args.full:
        runs["plain_torch"] = torch_variant(args.batch_size, args.size, args.steps,
                                            spec["train"]["precision"])
    names = list(runs)
    for name in names:  # warm-up round
        runs[name]()
    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(runs[name]())
    base = names[0]
    result = {"precision": spec["train"]["precision"], "views": 2 * args.batch_size,
              "size": args.size, "steps": args.steps, "rounds": args.rounds,
              "threads": args.threads, "full": args.full,
              "optimizer": spec["optimizer"]["name"] if args.full else args.optimizer,
              "variants": {}}
    for name in names:
        row = {"median_ms": round(statistics.median(times[name]), 3),
               f"ratio_to_{base}": round(statistics.median(
                   a / b for a, b in zip(times[name], times[base])), 3)}
        if "plain_torch" in times:
            row["ratio_to_plain_torch"] = round(statistics.median(
                a / b for a, b in zip(times[name], times["plain_torch"])), 3)
        result["variants"][name] = row
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, row in result["variants"].items():
        print(f"{name:>14}: " + ", ".join(f"{k} {v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
