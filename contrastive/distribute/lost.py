"""The line that reports a lost process of a multi-process run: which
process, during which epoch, the newest checkpoint and how to continue.

Standard library only: a jax supervisor (`jax_supervisor`) builds it from a
note after its child was ended, without Keras.
"""

import json
import pathlib
import shlex


class LostProcess:
    """`report(who)` is the line for a lost process (`who`: e.g. "process 1
    of 2 stopped responding", see `Distribution.watch`), read at call time
    from the run's checkpoint state.

    Args:
        run: the run directory.
        state: its checkpoint state file (`{"epoch": N, ...}`).
        epochs: the epochs the run trains.
        epoch: the epoch in progress (1-based); `update` keeps it current.
    """

    def __init__(self, run, state, epochs, epoch):
        self.run = pathlib.Path(run)
        self.state = pathlib.Path(state)
        self.epochs = int(epochs)
        self.epoch = int(epoch)

    def update(self, epoch):
        """The epoch in progress is now `epoch` (1-based)."""
        self.epoch = int(epoch)

    def note(self, who):
        """What `from_note` needs to say the line later, in another process."""
        return {"who": who, "run": str(self.run), "state": str(self.state),
                "epochs": self.epochs, "epoch": self.epoch}

    @classmethod
    def from_note(cls, note):
        """The report `note` describes, and its `who`."""
        return cls(note["run"], note["state"], note["epochs"], note["epoch"]), note["who"]

    def __call__(self, who):
        try:
            done = int(json.loads(self.state.read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            done = 0
        kept = (f"the last checkpoint is epoch {done} in {self.run}" if done
                else f"{self.run} has no checkpoint yet")
        # The checkpoint may be newer than the epoch this process last saw end.
        epoch = min(max(self.epoch, done + 1), self.epochs)
        return (f"{who} during epoch {epoch} of {self.epochs}; {kept}; continue with "
                f"`contrastive train --resume {shlex.quote(str(self.run))}`, started on every "
                "process as before")
