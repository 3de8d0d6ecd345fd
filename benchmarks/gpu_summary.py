"""Prints the table of `gpu.sh`'s figures from the JSON files in a folder.

A phase that did not finish shows as missing; for the CIFAR-10 run killed
before its end, the epochs reached and their mean time come from its
`cifar10-metrics.csv` where there is one.

    python benchmarks/gpu_summary.py OUT [--only cifar10]

With `--only cifar10` (`gpu.sh --cifar10`), only the CIFAR-10 run's figures.
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


def rows(folder, only=None):
    """Returns `(what, figure)` pairs for every figure found in `folder`
    (with `only="cifar10"`, the CIFAR-10 run's)."""
    out = []
    cifar = _read(folder, "cifar10-jax.json")
    if cifar and cifar.get("overrides"):
        out.append(("cifar10 --set", "; ".join(cifar["overrides"])))
    if only == "cifar10":
        return out + _cifar10_rows(folder, cifar)
    jax = _read(folder, "throughput-jax.json")
    if jax:
        out += [
            ("jax full step, source images/s", jax["full_images_per_second"]),
            ("jax floor (encoder+head), source images/s", jax["floor_images_per_second"]),
            ("jax full / floor", jax["ratio"]),
        ]
    else:
        out.append(("jax throughput", "missing"))
    out += _cifar10_rows(folder, cifar)
    torch = _read(folder, "throughput-torch.json")
    if torch:
        out.append(("torch full step, source images/s", torch["full_images_per_second"]))
        for key, what in (("traced_step", "torch step traced (torch_step)"),
                          ("traced_step_compiled", "torch traced step compiled"),
                          ("traced_step_failure", "torch step not traced because"),
                          ("compiled_vs_traced", "torch compiled vs traced, max rel. diff"),
                          ("first_epoch_seconds", "torch first epoch (compilation) seconds"),
                          ("floor_images_per_second", "torch floor (encoder+head), images/s"),
                          ("ratio", "torch full / floor")):
            if key in torch:
                out.append((what, torch[key]))
    else:
        out.append(("torch throughput", "missing"))
    overhead = _read(folder, "overhead-torch.json")
    if overhead:
        for key in ("keras_images_per_second", "torch_images_per_second",
                    "torch_compile_images_per_second", "ratio_keras_to_torch",
                    "ratio_keras_to_torch_compile", "augment_ms_per_view"):
            if key in overhead:
                out.append((f"torch overhead {key}", overhead[key]))
        if torch and overhead.get("torch_compile_images_per_second"):
            out.append(("torch full step / plain compiled torch floor",
                        round(torch["full_images_per_second"]
                              / overhead["torch_compile_images_per_second"], 3)))
    else:
        out.append(("torch overhead", "missing"))
    return out


def _cifar10_rows(folder, cifar):
    out = []
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
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    folder = pathlib.Path(argv[0])
    only = argv[2] if argv[1:2] == ["--only"] and len(argv) > 2 else None
    device = None
    for name in ("throughput-jax.json", "cifar10-jax.json", "throughput-torch.json"):
        device = device or (_read(folder, name) or {}).get("device")
    print(f"== summary ({device or 'device unknown'})")
    for what, figure in rows(folder, only):
        print(f"{what:>48}: {figure}")


if __name__ == "__main__":
    main()
