"""`metrics.csv`: one row per epoch of everything `fit` logged."""

import csv
import io
import math
import pathlib

import keras

from contrastive.files import written_atomically


class MetricsLog(keras.callbacks.Callback):
    """Writes one row per epoch to a CSV file, with a column for every
    metric logged so far.

    Unlike `keras.callbacks.CSVLogger`, whose columns are fixed by the first
    epoch, a metric that first appears later (the kNN monitor every k
    epochs) widens the file, earlier rows leaving it empty; no column is
    invented for metrics never logged. The file is rewritten whole and
    atomically at each epoch, so a killed run leaves complete rows.

    Args:
        path: the CSV file.
        append: keep the rows already in the file (a resumed run); the
            file is started afresh otherwise.
    """

    def __init__(self, path, append=False):
        super().__init__()
        self.path = pathlib.Path(path)
        self.append = append

    def on_train_begin(self, logs=None):
        self.rows = self._read() if self.append else []

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": str(epoch)}
        row.update((key, _text(value)) for key, value in (logs or {}).items())
        self.rows.append(row)
        columns = ["epoch"] + sorted({key for r in self.rows for key in r} - {"epoch"})
        text = io.StringIO()
        writer = csv.DictWriter(text, columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        with written_atomically(self.path) as tmp:
            tmp.write_text(text.getvalue(), encoding="utf-8")

    def _read(self):
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                return [dict(row) for row in csv.DictReader(f)]
        except FileNotFoundError:
            return []


def _text(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return repr(number) if math.isfinite(number) else str(number)
