"""The run directory as training writes it. Only the chief process writes:
every other process gets a `FollowerRunDir`, which reads and never writes.

A run directory holds `spec.yaml` (the resolved spec), `metrics.csv`,
`curves.png`, TensorBoard logs under `tensorboard/`, atomic checkpoints
(`checkpoint.json` naming the newest `checkpoints/epoch-NNNN.weights.h5`),
`encoder.keras` (float32 images in [0, 1] to h), `encoder_head1.keras` (the
same, then the head's first layer: SimCLR v2's fine-tuning start) and
`results.json`. A run that fails before its first checkpoint removes what
it wrote.
"""

import json
import os
import pathlib
import shutil
import time
import warnings

from contrastive.errors import SpecError
from contrastive.files import remove, written_atomically
from contrastive.training.checkpoints import (
    FOLDER,
    Checkpoint,
    newest_intact,
    remove_leftovers,
)

RESULTS = "results.json"
METRICS = "metrics.csv"


def default_path(spec):
    """`runs/<spec file stem>-<YYYYmmdd-HHMMSS>`, unique for each run."""
    stem = pathlib.Path(spec.file).stem if spec.file != "<spec>" else "run"
    return pathlib.Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


class RunDir:
    """The chief's view: writes the spec, metrics, checkpoints, encoder and
    results. Nothing is created before `start`, and a run that fails before
    its first checkpoint can `discard` what it wrote, so the same command
    can be run again with the same directory.

    Use `RunDir.open`, which gives the other processes a `FollowerRunDir`.
    """

    writes = True

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self._created = False  # the folder itself is this run's
        self._fresh = False  # this run wrote spec.yaml: a new run

    @classmethod
    def open(cls, path, chief=True, resume=False, key="output.dir"):
        """The run directory at `path` for this process (`key`: where the
        path came from, for messages).

        Raises:
            SpecError: a new run's directory cannot be created, or already
                holds something (a run is never overwritten), or a resumed
                one is not a run.
        """
        run_dir = (cls if chief else FollowerRunDir)(path)
        if resume:
            run_dir.check_resumable()
        else:
            run_dir.check_new(key)
        return run_dir

    def check_new(self, key="output.dir"):
        from contrastive.preflight import check_output

        check_output(self.path, key)

    def check_resumable(self):
        if not (self.path / "spec.yaml").is_file():
            raise SpecError(f"{self.path}: expected a run directory with a spec.yaml", "--resume")

    def state(self):
        """The newest intact checkpoint's state (`epoch`, `weights`, ...) or
        None; a damaged newer one is named in a warning and passed over.

        Raises:
            SpecError: checkpoints exist and none is intact.
        """
        return newest_intact(self.path, warn=_warn)

    def has_checkpoints(self):
        """Whether any checkpoint was written (intact or not): a state file.
        A weights file without its state record (a run killed between the
        two) is no checkpoint; the next save replaces it."""
        return (self.path / "checkpoint.json").exists() or any(
            (self.path / FOLDER).glob("epoch-*.json"))

    def start(self, spec, first_epoch):
        """Creates the directory and writes `spec.yaml` (a new run), or drops
        the metrics of the epochs a resumed run repeats and the temporary
        files of a checkpoint its killed run did not finish writing."""
        if first_epoch == 0 and not (self.path / "spec.yaml").exists():
            self._created = not self.path.exists()
            self._fresh = True
            self.path.mkdir(parents=True, exist_ok=True)
            _write_text(self.path / "spec.yaml", f"# resolved from {spec.file}\n" + spec.to_yaml())
        else:
            unwritable = [p for p in (self.path, self.path / FOLDER, self.path / METRICS)
                          if p.exists() and not os.access(p, os.W_OK)]
            if unwritable:
                raise SpecError(f"{unwritable[0]} is not writable; resuming writes checkpoints "
                                "and metrics there", "--resume", file=str(self.path))
            remove_leftovers(self.path)
            (self.path / f"{METRICS}.tmp").unlink(missing_ok=True)  # an earlier version's
            self._truncate_metrics(first_epoch)

    def callbacks(self, spec, first_epoch):
        """The metrics log and the checkpoints (after any callback that adds
        to the epoch's logs)."""
        from contrastive.training.metrics_log import MetricsLog

        return [
            MetricsLog(self.path / METRICS, append=first_epoch > 0),
            Checkpoint(self.path, spec.output.checkpoint_every, spec.train.epochs, first_epoch,
                       spec=spec.as_dict()),
        ]

    def discard(self):
        """Removes what a new run that failed before its first checkpoint
        wrote (the whole directory, if this run created it; else all it
        holds, since a new run starts only in an empty one), so that the
        same command can run again. A resumed run's directory is kept."""
        if not self._fresh or self.has_checkpoints():
            return
        if self._created:
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            for path in self.path.iterdir():
                remove(path)

    def finish(self, spec, parts, results):
        """Writes the curves, the encoder files, `results.json` and, when
        unreadable files were left out of the data, `skipped.txt`."""
        skipped = parts.input.skipped
        if skipped:
            _write_text(self.path / "skipped.txt", "\n".join(skipped) + "\n")
            results["skipped_files"] = len(skipped)
        if spec.output.plot:
            from contrastive.plots import plot_metrics

            with written_atomically(self.path / "curves.png") as tmp:
                plot_metrics(self.path / METRICS, tmp)
        if spec.output.save_encoder:
            shape = parts.input.image_shape
            save_encoder(parts.encoder, shape, self.path / "encoder.keras")
            save_encoder(parts.encoder, shape, self.path / "encoder_head1.keras", head=parts.head)
        _write_text(self.path / RESULTS, json.dumps(results, indent=2))  # last: the run is done

    def finished(self, epochs):
        """Whether the run has written its results after `epochs` epochs."""
        try:
            results = json.loads((self.path / RESULTS).read_text(encoding="utf-8"))
            return results["epochs"] >= epochs
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def last_logged(self, key):
        """The value of `key` in `metrics.csv`'s last row, or None."""
        from contrastive.run import Run

        rows = Run(self.path).metrics
        return rows[-1].get(key) if rows else None

    def _truncate_metrics(self, epochs):
        path = self.path / METRICS
        if not path.exists():
            if epochs:
                _warn(f"{path} is missing: the metrics of epochs 1-{epochs} are lost; those of "
                      "the resumed epochs are written")
            return
        try:
            # A damaged byte damages its row only: rows are kept by their epoch.
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        except OSError as exc:
            aside = path.with_name(f"{path.name}.unreadable")
            try:
                os.replace(path, aside)
            except OSError:
                raise SpecError(f"{path}: unreadable ({exc.strerror or exc}); expected a "
                                "metrics file the resumed run can go on writing", "--resume",
                                file=str(path)) from None
            _warn(f"{path}: unreadable ({exc.strerror or exc}); kept as {aside.name}, and "
                  "started afresh")
            lines = []
        rows = [(_epoch(line), line) for line in lines[1:]]
        kept = lines[:1] + [line for epoch, line in rows if epoch is not None and epoch < epochs]
        missing = sorted(set(range(epochs)) - {epoch for epoch, _ in rows})
        if missing:
            _warn(f"{path} lacks the metrics of {len(missing)} of the {epochs} epochs before "
                  f"the resumed one (the first: epoch {missing[0] + 1}); they stay missing")
        _write_text(path, "".join(kept))


class FollowerRunDir(RunDir):
    """A process other than the chief: reads the checkpoints, writes nothing."""

    writes = False

    def check_new(self, key="output.dir"):
        pass

    def start(self, spec, first_epoch):
        pass

    def callbacks(self, spec, first_epoch):
        """The chief's checkpoints, written to a private temporary folder
        and thrown away: saving reads distributed variables, which every
        process must do together (jax's multi-process arrays;
        MultiWorkerMirroredStrategy's documented pattern)."""
        from contrastive.files import scratch_folder

        self._scratch = scratch_folder("contrastive-follower-")
        return [Checkpoint(self._scratch.name, spec.output.checkpoint_every, spec.train.epochs,
                           first_epoch, keep=1)]

    def discard(self):
        pass

    def finish(self, spec, parts, results):
        pass


def _write_text(path, text):
    with written_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _epoch(line):
    """The epoch of a `metrics.csv` row, or None for a damaged one."""
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return None


def _warn(line):
    warnings.warn(line, stacklevel=3)


def save_encoder(encoder, image_shape, path, head=None):
    """Saves the encoder as a `.keras` model: float32 images in [0, 1] to h.

    With `head`, saves instead the encoder followed by the head's first
    layer and its ReLU (the representation SimCLR v2 fine-tunes from), when
    the head has hidden layers (`head.hidden`); otherwise writes nothing.
    """
    import keras

    inputs = keras.Input(shape=tuple(image_shape), dtype="float32", name="images")
    outputs = encoder(inputs, training=False)
    name = "encoder"
    if head is not None:
        hidden = getattr(head, "hidden", None)
        if not hidden:
            return
        outputs = keras.layers.Activation("relu")(hidden[0](outputs, training=False))
        name = "encoder_head1"
    with written_atomically(path) as tmp:
        keras.Model(inputs, outputs, name=name).save(str(tmp))
