"""The state file of a run's checkpoints, written atomically."""

import json
import os
import pathlib

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
