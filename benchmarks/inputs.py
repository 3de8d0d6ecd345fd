"""Benchmark: training images per second with each `train.input` mode, as
ratios to `memory` measured in the same process.

Not a test. Each mode trains the same model (the spec's, default a small
CNN with the `cifar10` augmentation) with `model.fit` for one warm-up epoch
(compilation) and then `--epochs` timed epochs of `--steps` steps.

    KERAS_BACKEND=jax python benchmarks/inputs.py --data ../shared/datasets/cifar10 \
        --batch-size 256 --steps 20 --json

`--data` is a local CIFAR-10 copy (a folder with `cifar10-train.tar.gz`);
the stream mode reads it from the files, extracted once into the cache.
"""

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODES = ("memory", "device", "stream")


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


def measure(mode, dataset, args):
    import keras

    from contrastive.model import SimCLR
    from contrastive.registry import build
    from contrastive.training.inputs import training_input

    keras.utils.set_random_seed(0)
    data_input = training_input(dataset, mode, args.batch_size, 0, args.steps)
    epochs = 1 + args.epochs
    model = SimCLR(
        build("encoders", {"name": "small_cnn", "widths": [32, 64]}),
        build("heads", {"name": "mlp", "output_dim": 64}),
        build("augmenters", {"name": "simclr", "preset": "cifar10"}, context={"seed": 0}),
        build("losses", {"name": "nt_xent", "temperature": 0.5}),
        input_layer=data_input.input_layer(),
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    timer = _timer()
    model.fit(**data_input.fit_arguments(0, epochs), epochs=epochs, shuffle=False, verbose=0,
              callbacks=[timer, *data_input.callbacks()])
    seconds = sum(timer.seconds[1:])
    return args.epochs * args.steps * args.batch_size / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a local CIFAR-10 copy")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import keras

    from contrastive.datasets.cifar import Cifar10

    dataset = Cifar10(path=args.data, limit_per_class=args.limit_per_class)
    rates = {mode: measure(mode, dataset, args) for mode in MODES}
    result = {
        "backend": keras.backend.backend(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "batch_size": args.batch_size,
        "images_per_second": {mode: round(rate, 1) for mode, rate in rates.items()},
        "ratio_to_memory": {mode: round(rate / rates["memory"], 3) for mode, rate in rates.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for mode in MODES:
            print(f"{mode:8s} {rates[mode]:10.1f} images/s  x{result['ratio_to_memory'][mode]:.3f}")


if __name__ == "__main__":
    main()
