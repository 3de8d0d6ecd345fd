"""Progress bars of the evaluation phases: Keras' `Progbar`, on stderr.

Keras writes its progress bars to stdout; contrastive's commands keep stdout
for their results (`--json` above all), so these bars go to stderr. With
`verbose="auto"` they are shown when stderr is a terminal, as Keras shows
`fit`'s bar by default, and never in a pipe or a log file.
"""

import contextlib
import contextvars
import sys

import keras

# The `verbose` of bars whose caller passes none (the data phases, deep
# inside `Dataset.load`): "auto" unless a command or a run says otherwise.
_DEFAULT = contextvars.ContextVar("contrastive_progress", default="auto")


@contextlib.contextmanager
def default_verbosity(verbose):
    """Within the block, bars created with `verbose=None` take `verbose`
    (0, 1 or `"auto"`): how `train.verbose` and `--progress/--no-progress`
    reach the file scan, the decode and the cache build."""
    shows_progress(verbose)
    token = _DEFAULT.set(verbose)
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def shows_progress(verbose):
    """Whether `verbose` (0, 1 or `"auto"`) asks for a progress bar now.

    Raises:
        ValueError: `verbose` is none of those.
    """
    if verbose == "auto":
        return bool(getattr(sys.stderr, "isatty", None) and sys.stderr.isatty())
    if verbose in (0, 1, False, True):
        return bool(verbose)
    raise ValueError(f"expected verbose 0, 1 or 'auto', received {verbose!r}")


class Progress:
    """A `keras.utils.Progbar` on stderr under a title line, or nothing.

    Example:

    ```python
    bar = Progress("h of the training split", len(images), verbose=1, unit_name="image")
    for batch in batches:
        ...
        bar.add(len(batch))
    ```

    Args:
        title: the phase, printed on its own line above the bar.
        target: the number of units when the phase is done.
        verbose: 0 (silent), 1 (a bar) or `"auto"` (a bar when stderr is a
            terminal); None: the `default_verbosity` in force.
        unit_name: what is counted (`image`, `epoch`, ...).
        shown: names of values shown as they are updated (not averaged).
    """

    def __init__(self, title, target, verbose="auto", unit_name="step", shown=()):
        self.bar, self.done = None, 0
        if shows_progress(_DEFAULT.get() if verbose is None else verbose):
            with _to_stderr():
                print(title)
                self.bar = keras.utils.Progbar(target, unit_name=unit_name,
                                               stateful_metrics=shown)

    def update(self, current, values=None):
        """Shows `current` units done, and `values` (`[(name, value)]`)."""
        self.done = current
        if self.bar is None:
            return
        with _to_stderr():
            self.bar.update(current, values)

    def add(self, count):
        """Shows `count` more units done."""
        self.update(self.done + count)


class EpochProgress(keras.callbacks.Callback):
    """One `Progress` bar over the epochs of a `fit`, with the loss, instead
    of Keras' bar per epoch.

    Args:
        title: the phase.
        epochs: the epochs `fit` runs.
        verbose: 0, 1 or `"auto"`, as `Progress`.
    """

    def __init__(self, title, epochs, verbose="auto"):
        super().__init__()
        self.title, self.epochs, self.verbose = title, epochs, verbose
        self.progress = None

    def on_train_begin(self, logs=None):
        self.progress = Progress(self.title, self.epochs, self.verbose, unit_name="epoch",
                                 shown=("loss",))

    def on_epoch_end(self, epoch, logs=None):
        shown = [(k, float(v)) for k, v in (logs or {}).items() if k == "loss"]
        self.progress.update(epoch + 1, shown)


@contextlib.contextmanager
def _to_stderr():
    # Progbar writes (and checks for a terminal) through sys.stdout.
    with contextlib.redirect_stdout(sys.stderr):
        yield
