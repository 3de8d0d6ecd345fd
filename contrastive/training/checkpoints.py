"""Checkpoints of a run: the weights files, the state file that names the
newest, written atomically, and the callback that writes both."""

import json
import math
import os
import pathlib

import keras

STATE = "checkpoint.json"


def write_json_atomically(path, data):
    """Writes JSON to `path` through a temporary file and a rename."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_state(run_dir):
    """Returns the last checkpoint's state (`epoch`, `weights`) or None."""
    path = pathlib.Path(run_dir) / STATE
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Checkpoint(keras.callbacks.Callback):
    """Saves model and optimizer state every `every` epochs, atomically.

    Weights (the model's and the optimizer's) go to
    `checkpoints/epoch-NNNN.weights.h5` through a temporary file and a
    rename; then `checkpoint.json`, holding the epoch, that file's name and
    the augmenters' random-generator states, is replaced to point at it. A
    crash at any moment leaves the previous checkpoint intact. An epoch whose
    loss is not finite is never saved. The `keep` newest files are kept.

    Args:
        run_dir: the run directory.
        every: save every this many epochs (and after the last).
        epochs: the run's total epochs.
        first_epoch: the epoch index training starts from (resumed runs).
        keep: how many checkpoint files to keep.
    """

    def __init__(self, run_dir, every, epochs, first_epoch=0, keep=2):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.every = every
        self.epochs = epochs
        self.first_epoch = first_epoch
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not finite(loss):
            return
        if done % self.every and done != self.epochs:
            return
        folder = self.run_dir / "checkpoints"
        folder.mkdir(exist_ok=True)
        name = f"epoch-{done:04d}.weights.h5"
        tmp = folder / f".tmp-{name}"
        self.model.save_weights(str(tmp))
        os.replace(tmp, folder / name)
        write_json_atomically(
            self.run_dir / STATE,
            {
                "epoch": done,
                "weights": f"checkpoints/{name}",
                "random_states": [
                    keras.ops.convert_to_numpy(v).tolist() for v in random_states(self.model)
                ],
            },
        )
        saved = sorted(folder.glob("epoch-*.weights.h5"))
        for old in saved[: -self.keep]:
            old.unlink()


def random_states(model):
    """The random-generator states of `model` (its `SeedGenerator`s), which
    `save_weights` leaves out, in a fixed order."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def finite(value):
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
