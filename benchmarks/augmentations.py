"""Benchmark: cost of the SimCLR augmentation per batch, compiled.

Not a test. Runs the `simclr` augmenter (one view per call) the way the train
step runs it: under `jax.jit` on JAX, `tf.function(jit_compile=True)` (XLA)
on TensorFlow, eagerly or with `torch.compile` (`--torch-compile`) on torch.

    KERAS_BACKEND=jax python benchmarks/augmentations.py
    KERAS_BACKEND=torch python benchmarks/augmentations.py --torch-compile

Cases: 512 images of 32x32 (preset cifar10) and 256 of 224x224 (preset
imagenet, with blur). Prints the median time per batch (one view) over
`--repeats` runs after one warm-up (compilation) run.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

CASES = (("cifar10", 512, 32), ("imagenet", 256, 224))


def compiled(layer, torch_compile=False):
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        state = [v.value for v in layer.non_trainable_variables]

        @jax.jit
        def step(state, images):
            out, state = layer.stateless_call([], state, images, training=True)
            return out, state

        def run(images):
            nonlocal state
            out, state = step(state, images)
            return out.block_until_ready()

        return run
    if backend == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: layer(x, training=True), jit_compile=True)
        return lambda images: fn(images).numpy()
    import torch

    fn = lambda x: layer(x, training=True)  # noqa: E731
    if torch_compile:
        fn = torch.compile(fn)

    def run(images):
        with torch.no_grad():
            return fn(images).cpu()

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-compile", action="store_true")
    parser.add_argument("--only", choices=[c[0] for c in CASES], default=None)
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    from keras import ops

    from contrastive.augmenters.simclr import SimCLRAugment

    print(f"backend {keras.backend.backend()}, keras {keras.__version__}")
    for preset, batch, side in CASES:
        if args.only and preset != args.only:
            continue
        layer = SimCLRAugment(preset=preset, seed=0)
        host = np.random.default_rng(0).integers(0, 256, (batch, side, side, 3), dtype=np.uint8)
        images = ops.convert_to_tensor(host)
        run = compiled(layer, args.torch_compile)
        start = time.perf_counter()
        run(images)
        first = time.perf_counter() - start
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            run(images)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        print(
            f"{preset:9s} {batch} x {side}x{side}: {median * 1e3:9.1f} ms/batch/view "
            f"({batch / median:8.0f} images/s), first call (compile) {first:.1f} s"
        )


if __name__ == "__main__":
    main()
