"""Benchmark: training images per second with each `train.input` mode, as
ratios to `memory` measured in the same process.

Not a test. Each mode trains the same model (the spec's, default a small
CNN with the `cifar10` augmentation) with `model.fit` for one warm-up epoch
(compilation) and then `--epochs` timed epochs of `--steps` steps.

    KERAS_BACKEND=jax python benchmarks/inputs.py --data ../shared/datasets/cifar10 \
        --batch-size 256 --steps 20 --json

`--data` is a local CIFAR-10 copy (a folder with `cifar10-train.tar.gz`);
the stream mode reads it from the files, extracted once into the cache.

With `--decode`, measures instead decoded images per second per CPU core for
ImageNet-like JPEGs of several sizes made from CIFAR-10 (or synthetic without
`--data`), and the cores needed to feed a ResNet-50 at `--gpu-rate` images/s
(see `decode_rate.py`):

    python benchmarks/inputs.py --decode --data ../shared/datasets/cifar10 \
        --images 500 --seconds 8 --json
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


def measure(mode, dataset, args, callbacks=()):
    """Training images per second of `mode`, fitting with `callbacks` too."""
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
              callbacks=[timer, *data_input.callbacks(), *callbacks])
    seconds = sum(timer.seconds[1:])
    return args.epochs * args.steps * args.batch_size / seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="a local CIFAR-10 copy")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--limit-per-class", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--decode", action="store_true",
                        help="decode rate per CPU core for ImageNet-like JPEGs instead")
    parser.add_argument("--images", type=int, default=500, help="--decode: JPEGs per size")
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="--decode: timed seconds per pipeline and worker count")
    parser.add_argument("--gpu-rate", type=float, default=None,
                        help="--decode: images/s the GPU trains ResNet-50 at (default 2,470: one "
                             "A100 80GB, mixed precision, NVIDIA DeepLearningExamples)")
    args = parser.parse_args()
    if args.decode:
        return decode_main(args)
    if args.data is None:
        parser.error("--data is required (a local CIFAR-10 copy) unless --decode")

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


def decode_main(args):
    import decode_rate

    gpu_rate = args.gpu_rate or decode_rate.RESNET50_A100_RATE
    result = decode_rate.measure(args.data, args.images, args.seconds, gpu_rate)
    result["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    print(json.dumps(result, indent=2) if args.json else decode_rate.table(result))


if __name__ == "__main__":
    main()
