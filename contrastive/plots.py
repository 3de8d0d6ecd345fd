"""A PNG of a run's training curves, from its metrics.csv."""

import csv
import math
import pathlib


def plot_metrics(csv_path, png_path):
    """Plots every metric column of `csv_path` against the epoch.

    Returns:
        The PNG path, or None when there is nothing to plot.
    """
    csv_path = pathlib.Path(csv_path)
    if not csv_path.exists():
        return None
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        rows = [row for row in csv.DictReader(f) if _is_epoch(row.get("epoch"))]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = plotted_columns(rows)
    if not columns:
        return None
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3), squeeze=False)
    for ax, column in zip(axes[0], columns):
        points = [(e, _number(r[column])) for e, r in zip(epochs, rows)]
        ax.plot(*zip(*[(e, v) for e, v in points if math.isfinite(v)]), marker="o", markersize=3)
        ax.set_title(column)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return pathlib.Path(png_path)


def plotted_columns(rows):
    """The metric columns of `rows` (from `metrics.csv`) with at least one
    value; the epoch and learning rate are left out."""
    return [c for c in rows[0] if c not in ("epoch", "learning_rate")
            and any(math.isfinite(_number(r[c])) for r in rows)]


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def _is_epoch(text):
    """Whether a row's `epoch` is one (not a damaged row's)."""
    return isinstance(text, str) and text.strip().isdigit()
