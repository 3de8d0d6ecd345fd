"""Benchmark: what a synchronous batch-end callback costs a training step.

Not a test. On jax and torch Keras calls batch ends in a worker thread
unless a callback without `async_safe` has a batch-end hook; then every
step waits for the previous one's loss before the next is dispatched. The
same `fit` as `inputs.py` (small CNN, `cifar10` augmentation, one input
mode) runs with no callbacks, with the callbacks every run has
(`StopOnNonFinite`, `Interruptible`: asynchronous), and with Keras'
`TerminateOnNaN` in their place (synchronous), taking turns `--rounds`
times; prints images per second and the ratios to no callbacks.

    KERAS_BACKEND=jax python benchmarks/batch_ends.py --data ../shared/datasets/cifar10 \\
        --limit-per-class 200 --batch-size 64 --steps 20 --json
"""

import argparse
import json
import os
import platform

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import inputs  # noqa: E402


def arms():
    import keras

    from contrastive.training.callbacks import Interruptible, StopOnNonFinite

    return {
        "none": lambda: [],
        "run": lambda: [Interruptible(), StopOnNonFinite()],
        "synchronous": lambda: [Interruptible(), keras.callbacks.TerminateOnNaN()],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a local CIFAR-10 copy")
    parser.add_argument("--mode", default="device", choices=inputs.MODES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each arm")
    parser.add_argument("--limit-per-class", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import keras

    from contrastive.datasets.cifar import Cifar10

    dataset = Cifar10(path=args.data, limit_per_class=args.limit_per_class)
    rates = {name: [] for name in arms()}
    for _ in range(args.rounds):
        for name, callbacks in arms().items():
            rates[name].append(inputs.measure(args.mode, dataset, args, callbacks()))
    best = {name: max(values) for name, values in rates.items()}
    result = {
        "backend": keras.backend.backend(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "mode": args.mode,
        "batch_size": args.batch_size,
        "images_per_second": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        "best_ratio_to_none": {name: round(rate / best["none"], 3) for name, rate in best.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for name, rate in best.items():
            print(f"{name:12s} {rate:10.1f} images/s  x{result['best_ratio_to_none'][name]:.3f}")


if __name__ == "__main__":
    main()
