"""Benchmark: SimCLR ResNet-18 on CIFAR-10, then kNN and linear evaluation.

Not a test. Trains with `benchmarks/cifar10.yaml` (the paper's CIFAR
settings, 100 epochs, batch 512) on the 50,000 training images, evaluates h
on the 10,000 test images (kNN with k = 200; linear on frozen features) and
prints accuracy, wall time and images per second as JSON.

    KERAS_BACKEND=jax python benchmarks/cifar10.py --data ../shared/datasets/cifar10
    KERAS_BACKEND=jax python benchmarks/cifar10.py --set train.epochs=1 \
        --set data.limit_per_class=100      # a quick check on a CPU
"""

import argparse
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = pathlib.Path(__file__).resolve().parent


def _device():
    import sys

    sys.path.insert(0, str(HERE))
    from throughput import _device as device

    return device()


def main():
    from contrastive.spec import load_spec
    from contrastive.training import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(HERE / "cifar10.yaml"))
    parser.add_argument("--data", default=None, help="folder holding cifar10-train.tar.gz and cifar10-test.tar.gz")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", default=None, help="run directory (default: a temporary one)")
    parser.add_argument("--output", default=None, help="also write the JSON to this file")
    args = parser.parse_args()
    overrides = list(args.overrides)
    if args.data:
        overrides.insert(0, f"data.path={args.data}")
    spec = load_spec(args.spec, overrides)
    out = args.out or tempfile.mkdtemp(prefix="cifar10-bench-")
    start = time.perf_counter()
    results = train(spec, out=pathlib.Path(out) / "run", log=print).results
    results["wall_seconds_total"] = round(time.perf_counter() - start, 1)
    results["pretraining_seconds"] = results.pop("seconds")
    results["device"] = _device()
    results["overrides"] = args.overrides
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
