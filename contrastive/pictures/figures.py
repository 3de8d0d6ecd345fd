"""matplotlib on the Agg backend, and what the pictures share."""

import pathlib

from contrastive.errors import SpecError
from contrastive.files import written_atomically
from contrastive.preflight import check_writable_folder

# Pixels per inch of every picture: sizes are given in inches.
DPI = 100


def pyplot():
    """`matplotlib.pyplot` drawing off-screen (Agg), whatever the display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_png_path(path, option="--out"):
    """Raises SpecError unless `path` is a `.png` file that can be written in
    an existing folder (see `check_writable_folder`)."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".png":
        raise SpecError(f"expected a .png file, received '{path}'", option)
    check_writable_folder(path.absolute().parent, path, option)
    return path


def class_name(label, class_names):
    """The name of `label` when the dataset gives names, else the number."""
    label = int(label)
    return str(class_names[label]) if 0 <= label < len(class_names) else str(label)


def save(fig, path):
    """Writes `fig` as a PNG of exactly its size x `DPI` pixels, and closes it."""
    try:
        with written_atomically(path) as tmp:
            fig.savefig(tmp, dpi=DPI, format="png")
    finally:
        pyplot().close(fig)
