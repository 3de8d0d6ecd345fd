"""Prints the table of `gpu.sh`'s figures from the JSON files in a folder.

A phase that did not finish shows as missing; for the CIFAR-10 run killed
before its end, the epochs reached and their mean time come from its
`cifar10-metrics.csv` where there is one.

    python benchmarks/gpu_summary.py OUT
"""

import csv
import json
import pathlib
import sys


def _read(folder, name):
    try:
        return json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def rows(folder):
    """Returns `(what, figure)` pairs for every figure found in `folder`."""
    out = []
    jax = _read(folder, "throughput-jax.json")
    if jax:
        out += [
            ("jax full step, source images/s", jax["full_images_per_second"]),
            ("jax floor (encoder+head), source images/s", jax["floor_images_per_second"]),
            ("jax full / floor", jax["ratio"]),
        ]
    else:
        out.append(("jax throughput", "missing"))
    cifar = _read(folder, "cifar10-jax.json")
    if cifar:
        evaluation = cifar.get("eval", {})
        out += [
            ("cifar10 epochs", cifar.get("epochs")),
            ("cifar10 pretraining seconds", cifar.get("pretraining_seconds")),
            ("cifar10 pretraining images/s", cifar.get("images_per_second")),
            ("cifar10 kNN top-1", evaluation.get("knn_accuracy")),
            ("cifar10 linear top-1", evaluation.get("linear_accuracy")),
            ("cifar10 whole run seconds", cifar.get("wall_seconds_total")),
        ]
    else:
        out.append(("cifar10", "missing"))
        metrics = folder / "cifar10-metrics.csv"
        if metrics.exists():
            with metrics.open(encoding="utf-8") as handle:
                epochs = list(csv.DictReader(handle))
            if epochs:
                out += [("cifar10 epochs reached", len(epochs)),
                        ("cifar10 last loss", epochs[-1].get("loss"))]
    torch = _read(folder, "throughput-torch.json")
    if torch:
        out += [
            ("torch full step, source images/s", torch["full_images_per_second"]),
            ("torch floor (encoder+head), source images/s", torch["floor_images_per_second"]),
            ("torch full / floor", torch["ratio"]),
        ]
    else:
        out.append(("torch throughput", "missing"))
    base = _read(folder, "throughput-torch-base.json")
    if base and torch:
        out.append(("torch full step without torch_speed, images/s",
                    base["full_images_per_second"]))
        out.append(("torch full step, with / without torch_speed",
                    round(torch["full_images_per_second"] / base["full_images_per_second"], 3)))
    overhead = _read(folder, "overhead-torch.json")
    if overhead:
        for key in ("keras_images_per_second", "torch_images_per_second",
                    "torch_compile_images_per_second", "ratio_keras_to_torch",
                    "ratio_keras_to_torch_compile", "augment_ms_per_view"):
            if key in overhead:
                out.append((f"torch overhead {key}", overhead[key]))
    else:
        out.append(("torch overhead", "missing"))
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    folder = pathlib.Path(argv[0])
    device = None
    for name in ("throughput-jax.json", "cifar10-jax.json", "throughput-torch.json"):
        device = device or (_read(folder, name) or {}).get("device")
    print(f"== summary ({device or 'device unknown'})")
    for what, figure in rows(folder):
        print(f"{what:>48}: {figure}")


if __name__ == "__main__":
    main()
