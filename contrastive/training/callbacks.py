"""Keras callbacks of a pretraining run besides checkpoints."""

import keras

from contrastive import interrupts
from contrastive.training.checkpoints import finite


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not finite(loss):
            self.model.stop_training = True


class Interruptible(keras.callbacks.Callback):
    """Raises `contrastive.interrupts.Interrupted` at a batch's or an epoch's
    end once the command line has seen a SIGINT, in case the exception the
    signal raised was lost (see `contrastive.interrupts`)."""

    def on_train_batch_end(self, batch, logs=None):
        interrupts.raise_if_interrupted()

    def on_epoch_end(self, epoch, logs=None):
        interrupts.raise_if_interrupted()


def monitor_callbacks(spec, parts, run_dir):
    """The kNN monitor (`eval.monitor_every`, with labelled held-out data)
    and TensorBoard logs (`output.tensorboard`, on the chief, when
    tensorflow and tensorboard are installed)."""
    callbacks = []
    every = spec.eval.monitor_every
    if every:
        from contrastive.errors import SpecError
        from contrastive.evaluation.data import labelled_splits
        from contrastive.evaluation.monitor import KnnMonitor

        try:
            train, test = labelled_splits(spec, parts.dataset, parts.input.data)
        except SpecError:
            train = test = None
        if test is not None:
            callbacks.append(KnnMonitor(train, test, every, k=spec.eval.knn.k,
                                        temperature=spec.eval.knn.temperature))
    if spec.output.tensorboard and run_dir.writes and _tensorboard_installed():
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir.path / "tensorboard"),
                                                     write_graph=False))
    return callbacks


def _tensorboard_installed():
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("tensorflow", "tensorboard"))
