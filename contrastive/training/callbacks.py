"""Keras callbacks of a pretraining run besides checkpoints."""

import keras

from contrastive import interrupts
from contrastive.training.checkpoints import finite


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Args:
        single_process: the run has one process. Then the callback is safe
            for Keras' asynchronous batch ends (jax, torch): the loss is read
            in a worker thread while the loop feeds the device, and training
            stops some batches later, at the latest at the epoch's end,
            where Keras waits for every batch end. Processes that train
            together must stop after the same step (the next one's
            collectives would wait for a partner), so with several the loss
            is read in the loop, after each step, as every process does.
    """

    def __init__(self, single_process=True):
        super().__init__()
        self.async_safe = single_process

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not finite(loss):
            # Not `self.model`: on jax that property puts the step's state
            # back into the model's variables, which in a worker thread races
            # the loop donating that state to the next step.
            self._model.stop_training = True


class Interruptible(keras.callbacks.Callback):
    """Raises `contrastive.interrupts.Interrupted` at a batch's start or an
    epoch's end once the command line has seen a SIGINT or SIGTERM, in case the
    exception the signal raised was lost (see `contrastive.interrupts`).

    A batch-start hook, not a batch-end one: Keras dispatches batch ends
    asynchronously only while no callback without `async_safe` has one.
    """

    def on_train_batch_begin(self, batch, logs=None):
        interrupts.raise_if_interrupted()

    def on_epoch_end(self, epoch, logs=None):
        interrupts.raise_if_interrupted()


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, safe for asynchronous batch ends while it
    writes once an epoch (its default) and writes no graph, profile or step
    time: its batch-end hook then writes nothing (TensorFlow's default
    writer, per thread, is set in the loop only for batch summaries) and
    does not touch the model."""

    def __init__(self, log_dir, **kwargs):
        super().__init__(log_dir, **kwargs)
        self.async_safe = (self.update_freq == "epoch" and not self._should_trace
                           and not self.write_steps_per_second and not self.write_graph)


def monitor_callbacks(spec, parts, run_dir):
    """The kNN monitor (`eval.monitor_every`, with labelled held-out data)
    and TensorBoard logs (`output.tensorboard`, on the chief, when
    tensorflow and tensorboard are installed)."""
    callbacks = []
    every = spec.eval.monitor_every
    if every:
        from contrastive.evaluation.data import NoEvaluationData, labelled_splits
        from contrastive.evaluation.monitor import KnnMonitor

        try:
            train, test = labelled_splits(spec, parts.dataset, parts.input.data)
        except NoEvaluationData:
            train = test = None
        if test is not None:
            callbacks.append(KnnMonitor(train, test, every, k=spec.eval.knn.k,
                                        temperature=spec.eval.knn.temperature))
    if spec.output.tensorboard and run_dir.writes and _tensorboard_installed():
        callbacks.append(EpochTensorBoard(str(run_dir.path / "tensorboard"), write_graph=False))
    return callbacks


def _tensorboard_installed():
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("tensorflow", "tensorboard"))
