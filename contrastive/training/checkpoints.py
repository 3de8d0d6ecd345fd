"""Checkpoints of a run: the weights files, a state record beside each, the
state file that names the newest, and the callback that writes them.

Each checkpoint is `checkpoints/epoch-NNNN.weights.h5` (model and optimizer
weights) and `checkpoints/epoch-NNNN.json` (its state: the epoch, the
weights file's size and SHA-256, the random-generator states that
`save_weights` leaves out and the resolved spec the run was trained with);
`checkpoint.json` is a copy of the newest
state. Every file is written through a temporary file and a rename, so a
crash at any moment leaves the previous checkpoint whole. Resuming takes
the newest checkpoint whose weights file is intact (`newest_intact`).
"""

import errno
import hashlib
import json
import math
import os
import pathlib
import re
import shutil

import keras
import numpy as np

from contrastive.files import TEMPORARY, remove, written_atomically

STATE = "checkpoint.json"
FOLDER = "checkpoints"
_EPOCH = re.compile(r"^epoch-(\d+)\.json$")


def write_json_atomically(path, data):
    """Writes JSON to `path` through a temporary file and a rename."""
    with written_atomically(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def digest(path):
    """The SHA-256 of the file at `path`, in hex."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def newest_intact(run_dir, warn=None):
    """The state of the newest checkpoint whose weights file is intact, or
    None when the run has no checkpoint.

    Candidates, newest first: `checkpoint.json`, then the state record of
    every checkpoint. A damaged state file or weights file is named through
    `warn` (one line each, once an intact checkpoint is found) and passed
    over; nothing is deleted.

    Raises:
        SpecError: checkpoints exist and none is intact.
    """
    from contrastive.errors import SpecError

    # The warnings are said only when a checkpoint is found: otherwise the
    # one error names every damaged file.
    said = []
    run_dir = pathlib.Path(run_dir)
    candidates, damaged = _candidates(run_dir, said.append)
    for state in candidates:
        problem = _damage(run_dir, state)
        if problem is None:
            for line in said if warn else ():
                warn(line)
            return state
        damaged.append(f"{run_dir / state['weights']} ({problem})")
        said.append(f"{run_dir / state['weights']}: {problem}; trying an older checkpoint")
    if damaged:
        raise SpecError(f"{run_dir}: no intact checkpoint to resume from (damaged: "
                        f"{'; '.join(damaged)}); to start over, train with another --out",
                        "--resume")
    return None


def _candidates(run_dir, warn):
    states, damaged = [], []
    files = [run_dir / STATE]
    records = sorted((run_dir / FOLDER).glob("epoch-*.json"), reverse=True)
    files += [f for f in records if _EPOCH.match(f.name)]
    for file in files:
        if not file.exists():
            continue
        try:
            state = json.loads(file.read_text(encoding="utf-8"))
            state["epoch"], state["weights"], state["random_states"]  # noqa: B018
        except (OSError, ValueError, KeyError, TypeError) as exc:
            damaged.append(f"{file} ({type(exc).__name__})")
            warn(f"{file}: unreadable checkpoint state ({type(exc).__name__}: {exc}); "
                 "trying an older checkpoint")
            continue
        if all(s["epoch"] != state["epoch"] for s in states):
            states.append(state)
    return sorted(states, key=lambda s: -s["epoch"]), damaged


def _damage(run_dir, state):
    """What is wrong with a checkpoint's weights file, or None."""
    path = run_dir / state["weights"]
    if not path.is_file():
        return "missing"
    if "bytes" in state and path.stat().st_size != state["bytes"]:
        return f"{path.stat().st_size} bytes where {state['bytes']} were written (truncated?)"
    if "sha256" in state and digest(path) != state["sha256"]:
        return "its contents changed since it was written (SHA-256 differs)"
    try:
        import h5py

        with h5py.File(path, "r"):
            pass
    except OSError as exc:
        return f"not a readable HDF5 file ({exc})"
    return None


def remove_leftovers(run_dir):
    """Removes the temporary files that a killed run left unfinished
    (`.tmp-*` in the run directory and in `checkpoints/`, and the
    `.*.json.tmp` of earlier versions). They were never renamed into place,
    so no checkpoint or finished file is among them."""
    run_dir = pathlib.Path(run_dir)
    leftovers = [run_dir / f".{STATE}.tmp", *run_dir.glob(f"{TEMPORARY}*")]
    if (run_dir / FOLDER).is_dir():
        leftovers += [*(run_dir / FOLDER).glob(f"{TEMPORARY}*"),
                      *(run_dir / FOLDER).glob(".epoch-*.json.tmp")]
    for path in leftovers:
        remove(path)


class Checkpoint(keras.callbacks.Callback):
    """Saves model and optimizer state every `every` epochs (and after the
    last), atomically; see the module's description. An epoch whose loss is
    not finite is never saved. Older checkpoints are removed only when a
    newer one supersedes them, keeping the `keep` newest.

    Args:
        run_dir: the run directory.
        every: save every this many epochs (and after the last).
        epochs: the run's total epochs.
        first_epoch: the epoch index training starts from (resumed runs).
        keep: how many checkpoints to keep.
        spec: the resolved spec mapping, recorded in each state so that a
            resumed run can say what changed (`spec_changes`).
    """

    def __init__(self, run_dir, every, epochs, first_epoch=0, keep=2, spec=None):
        super().__init__()
        self.run_dir = pathlib.Path(run_dir)
        self.every = every
        self.epochs = epochs
        self.first_epoch = first_epoch
        self.keep = keep
        self.spec = None if spec is None else _json_ready(spec)

    def on_epoch_end(self, epoch, logs=None):
        done = epoch + 1
        loss = (logs or {}).get("loss")
        if loss is not None and not finite(loss):
            return
        if done % self.every and done != self.epochs:
            return
        folder = self.run_dir / FOLDER
        folder.mkdir(exist_ok=True)
        name = f"epoch-{done:04d}.weights.h5"
        check_space(folder, self.model, name)
        with written_atomically(folder / name) as tmp:
            self.model.save_weights(str(tmp))
        state = {
            "epoch": done,
            "weights": f"{FOLDER}/{name}",
            "bytes": (folder / name).stat().st_size,
            "sha256": digest(folder / name),
            "random_states": [
                keras.ops.convert_to_numpy(v).tolist() for v in random_states(self.model)
            ],
        }
        if self.spec is not None:
            state["spec"] = self.spec
        state["backend"] = keras.backend.backend()
        write_json_atomically(folder / f"epoch-{done:04d}.json", state)
        write_json_atomically(self.run_dir / STATE, state)
        self._prune(folder, done)

    def _prune(self, folder, done):
        """Removes the checkpoints of epochs before `done`, but the newest
        `keep - 1` of them."""
        older = sorted(int(m.group(1)) for m in map(_EPOCH.match, os.listdir(folder))
                       if m and int(m.group(1)) < done)
        for old in older[:max(0, len(older) - (self.keep - 1))]:
            for suffix in (".weights.h5", ".json"):
                (folder / f"epoch-{old:04d}{suffix}").unlink(missing_ok=True)


def spec_changes(recorded, current, limit=6):
    """What differs between the spec a checkpoint recorded and `current`
    (resolved mappings), as `key.path: old -> new` lines, at most `limit`
    and a count of the rest; empty when they agree or nothing was recorded
    (checkpoints of older versions)."""
    if recorded is None:
        return []
    old, new = _leaves(recorded), _leaves(_json_ready(current))
    lines = [f"{key}: {_shown(old, key)} -> {_shown(new, key)}"
             for key in sorted(old.keys() | new.keys())
             if old.get(key, _ABSENT) != new.get(key, _ABSENT)]
    if len(lines) > limit:
        lines[limit:] = [f"{len(lines) - limit} more"]
    return lines


_ABSENT = object()


def _json_ready(mapping):
    return json.loads(json.dumps(mapping, default=str))


def _leaves(value, prefix=""):
    """`{key.path: value}` for every value that is not a non-empty mapping."""
    if not isinstance(value, dict) or (not value and prefix):
        return {prefix: value}
    leaves = {}
    for key, child in value.items():
        leaves.update(_leaves(child, f"{prefix}.{key}" if prefix else str(key)))
    return leaves


def _shown(leaves, key):
    if key not in leaves:
        return "(absent)"
    text = json.dumps(leaves[key])
    return text if len(text) <= 60 else text[:57] + "..."


def check_space(folder, model, name):
    """Raises `OSError` (ENOSPC) when `folder`'s disk has less room than
    the checkpoint `name` of `model` needs (its weights and optimizer
    variables, and a margin): HDF5 writing onto a full disk floods stderr
    and can crash the process, the previous checkpoints untouched or not."""
    variables = [*model.weights, *(model.optimizer.variables if model.optimizer else [])]
    needed = sum(math.prod(v.shape) * _itemsize(v.dtype) for v in variables)
    needed = int(needed * 1.05) + (1 << 20)
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"no space left on the disk of {folder} for checkpoint "
                                    f"{name}: it needs about {needed / 1e6:.1f} MB, "
                                    f"{free / 1e6:.1f} MB are free")


def _itemsize(dtype):
    try:
        return np.dtype(keras.backend.standardize_dtype(dtype)).itemsize
    except TypeError:  # bfloat16 and other types NumPy lacks
        return 2 if "16" in str(dtype) else 4


def random_states(model):
    """The random-generator states of `model` (its `SeedGenerator`s), which
    `save_weights` leaves out, in a fixed order."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def finite(value):
    """Whether `value` converts to a finite float."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
