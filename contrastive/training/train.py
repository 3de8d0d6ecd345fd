"""A pretraining run: the spec's parts, `model.fit`, the run directory."""

import time
import warnings

import numpy as np

from contrastive.distribute.lost import LostProcess
from contrastive.errors import ContrastiveError, ProcessLost, SpecError
from contrastive.evaluation.progress import default_verbosity
from contrastive.preflight import check_data
from contrastive.training.build import build_model, build_parts
from contrastive.training.run_dir import RunDir, default_path


class LaunchRequired(ContrastiveError):
    """The run needs more processes than this one; the message says how."""


def train(spec, out=None, log=print, resume=False):
    """Pretrains as `spec` says, then evaluates h; returns the `Run`.

    `spec` is a `Spec`, a spec file or a mapping (see `load_spec`); `out`
    the run directory (default `output.dir`, else a new `runs/<name>-<time>`;
    its files: `contrastive.training.run_dir`); `log` takes progress lines.
    With `resume`, continues the run in `out` from its newest checkpoint, to
    the weights an uninterrupted run reaches. Raises `SpecError` for a bad
    spec, data or directory, `FloatingPointError` when the loss is no longer
    finite (the last good checkpoint is kept) and `LaunchRequired` for a
    torch run that needs torchrun.
    """
    from contrastive.run import Run
    from contrastive.spec import load_spec

    spec = load_spec(spec)
    distribution = _distribution(spec)
    run_dir = RunDir.open(out or spec.output.dir or default_path(spec), distribution.is_chief,
                          resume, "--out" if out else "output.dir")
    state = run_dir.state() if resume else None
    first_epoch = state["epoch"] if state else 0
    if first_epoch > spec.train.epochs:
        raise SpecError(f"expected at least the {first_epoch} epochs of the checkpoint "
                        f"{run_dir.path / state['weights']}, received {spec.train.epochs}",
                        "train.epochs")
    if first_epoch == spec.train.epochs and run_dir.finished(spec.train.epochs):
        log(f"{run_dir.path} has finished its {spec.train.epochs} epochs and written its "
            "results: nothing to resume (to train on, raise train.epochs in its spec.yaml)")
        run = Run(run_dir.path, chief=run_dir.writes)
        run.untouched = True
        return run
    with distribution.scope(), default_verbosity(_data_verbosity(spec, distribution)):
        parts = build_parts(spec, distribution)
        model, schedule = build_model(spec, parts, distribution)
        if state is not None:
            restore(model, parts.input, state, run_dir.path, spec)
    run_dir.start(spec, first_epoch)
    if not run_dir.writes:
        log = _silent
    _announce(spec, parts, schedule, distribution, run_dir, first_epoch, log)
    if state is not None:
        _say_changes(spec, state, run_dir, log)
    try:
        history, seconds = _fit(spec, model, parts, run_dir, distribution, first_epoch)
        if run_dir.writes:
            with default_verbosity(_data_verbosity(spec, distribution)):
                results = _results(spec, parts, history, seconds, first_epoch, schedule,
                                   run_dir, log)
        run_dir.finish(spec, parts, results if run_dir.writes else None)
    except ProcessLost:
        raise  # every process resumes from the directory as it is
    except BaseException as exc:
        run_dir.discard()
        if run_dir.has_checkpoints() and run_dir.writes:
            exc.resume_hint = f"contrastive train --resume {run_dir.path}"
        raise
    return Run(run_dir.path, chief=run_dir.writes)


def _distribution(spec):
    """Checks the data, then sets up the spec's distribution."""
    from contrastive import interrupts
    from contrastive.distribute import from_spec

    check_data(spec)
    distribution = from_spec(spec.distribute)
    if distribution.num_processes > 1:
        interrupts.terminate_at_once()
    distribution.check_batch_size(spec.train.batch_size)
    if distribution.needs_launch:
        raise LaunchRequired(f"this run has {distribution.num_replicas} processes; start it with "
                             "torchrun (`contrastive train` prints the command)")
    return distribution


def resume(run_dir, log=print):
    """Continues the run in `run_dir` from its newest checkpoint. See `train`.

    Raises:
        SpecError: `run_dir` holds no resolved spec.
    """
    import pathlib

    from contrastive.run import Run

    folder = pathlib.Path(run_dir)
    if not (folder / "spec.yaml").is_file():
        problem = ("no such directory" if not folder.exists() else
                   "not a directory" if not folder.is_dir() else "it holds no spec.yaml")
        raise SpecError(f"expected the directory of a run `train` started (its spec.yaml and "
                        f"checkpoints), received {str(run_dir)!r}: {problem}", "--resume",
                        file=str(run_dir))
    spec = Run(run_dir).spec
    if not RunDir(run_dir).has_checkpoints():
        log(f"{run_dir} has no checkpoint yet: starting from epoch 0")
    return train(spec, out=run_dir, log=log, resume=True)


def restore(model, data_input, state, path, spec=None):
    """Builds the model and its optimizer, then loads a checkpoint: weights,
    optimizer state and random-generator states. With `spec` (the one the
    model was built from), a checkpoint that does not fit says what changed
    since it was written."""
    from contrastive.training.checkpoints import random_states, spec_changes

    changes = spec_changes(state.get("spec"), spec.as_dict()) if spec is not None else []
    edited = (f"spec.yaml changed since: {'; '.join(changes)}" if changes
              else "was spec.yaml edited?")

    model(data_input.example(), training=True)
    model.optimizer.build(model.trainable_variables)
    try:
        # Keras warns of each container it skips before it fails: said only
        # when the weights load.
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            model.load_weights(str(path / state["weights"]))
        for warning in said:
            warnings.warn_explicit(warning.message, warning.category, warning.filename,
                                   warning.lineno)
    except ValueError as exc:
        # Keras' message lists every variable that did not fit, with values.
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise SpecError(
            f"{path / state['weights']}: the checkpoint does not fit the model spec.yaml "
            f"builds ({edited}): {first[:300]}", "--resume") from None
    variables = random_states(model)
    if len(variables) != len(state["random_states"]):
        raise SpecError(
            f"{path / state['weights']}: the checkpoint holds {len(state['random_states'])} "
            "random-generator "
            f"states, the model built from spec.yaml has {len(variables)} ({edited})",
            "--resume",
        )
    for variable, value in zip(variables, state["random_states"]):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def _announce(spec, parts, schedule, distribution, run_dir, first_epoch, log):
    import keras

    if distribution.num_replicas > 1:
        log(distribution.describe())
    if first_epoch:
        log(f"resuming {run_dir.path} after epoch {first_epoch} of {spec.train.epochs}")
    log(f"backend {keras.backend.backend()}: {len(parts.input)} images "
        f"({parts.input.mode} input), batch {spec.train.batch_size}, "
        f"{parts.steps_per_epoch} steps x {spec.train.epochs} epochs -> {run_dir.path}")
    peak = getattr(schedule, "peak_learning_rate", None)
    if peak is not None:
        log(f"peak learning rate {float(peak):.6g}")


def _say_changes(spec, state, run_dir, log):
    """Says what differs between `spec` and the spec the checkpoint was
    trained with (an edited spec.yaml, or another spec given to `train`),
    and between the backends."""
    import keras

    from contrastive.training.checkpoints import spec_changes

    backend = state.get("backend")
    if backend not in (None, keras.backend.backend()):
        log(f"warning: {run_dir.path / state['weights']} was written on the {backend} backend, "
            f"the run goes on with {keras.backend.backend()}: its weights load, but the "
            "random draws and arithmetic differ, so it will not reach the weights of an "
            "uninterrupted run on either")
    changes = spec_changes(state.get("spec"), spec.as_dict())
    if changes:
        log(f"warning: the spec differs from the one {run_dir.path / state['weights']} was "
            f"trained with ({'; '.join(changes)}); the resumed run follows the new one, so it "
            "will not reach an uninterrupted run's weights")


def _fit(spec, model, parts, run_dir, distribution, first_epoch):
    """Runs `fit` from `first_epoch`; returns `(history, seconds)`."""
    import keras

    from contrastive import torch_speed
    from contrastive.training.callbacks import Interruptible, StopOnNonFinite, monitor_callbacks
    from contrastive.training.checkpoints import STATE

    explain = LostProcess(run_dir.path, run_dir.path / STATE, spec.train.epochs, first_epoch + 1)
    callbacks = [Interruptible(), torch_speed.callback(),
                 StopOnNonFinite(single_process=distribution.num_processes == 1),
                 *parts.input.callbacks(),
                 *monitor_callbacks(spec, parts, run_dir),
                 *run_dir.callbacks(spec, first_epoch),
                 keras.callbacks.LambdaCallback(
                     on_epoch_end=lambda epoch, logs: explain.update(epoch + 2))]
    start = time.perf_counter()
    with distribution.scope(), distribution.watch(explain):
        history = model.fit(
            **distribution.distribute_input(
                parts.input.fit_arguments(first_epoch, spec.train.epochs)),
            epochs=spec.train.epochs,
            initial_epoch=first_epoch,
            shuffle=False,  # the input shuffles itself, reproducibly
            verbose=spec.train.verbose if run_dir.writes else 0,
            callbacks=callbacks,
        )
    return history, time.perf_counter() - start


def _results(spec, parts, history, seconds, first_epoch, schedule, run_dir, log):
    """The results of a finished run, its evaluation included.

    Raises:
        FloatingPointError: the last epoch's loss is not finite.
    """
    import keras

    from contrastive.evaluation.evaluate import baselines, comparison, frozen_features
    from contrastive.evaluation.data import NoEvaluationData, labelled_splits

    losses = history.history.get("loss", [])
    epochs = first_epoch + len(losses)
    final_loss = float(losses[-1]) if losses else run_dir.last_logged("loss")
    if losses and not np.isfinite(losses[-1]):
        last = run_dir.state()
        kept = f"; the last good checkpoint is {run_dir.path / last['weights']}" if last else ""
        raise FloatingPointError(
            f"the loss became {losses[-1]} in epoch {epochs}; training stopped{kept}")
    images = parts.steps_per_epoch * spec.train.batch_size * len(losses)
    results = {
        "run_dir": str(run_dir.path),
        "backend": keras.backend.backend(),
        "epochs": epochs,
        "steps": parts.steps_per_epoch * epochs,
        "final_loss": final_loss,
        # a run resumed after its last epoch (killed while evaluating) trains no step
        "seconds": round(seconds, 2) if losses else None,
        "images_per_second": round(images / seconds, 1) if losses and seconds else None,
    }
    if getattr(schedule, "peak_learning_rate", None) is not None:
        results["peak_learning_rate"] = float(schedule.peak_learning_rate)
    results["eval"] = {}
    if spec.eval.knn.enabled or spec.eval.linear.enabled:
        try:
            train, test = labelled_splits(spec, parts.dataset, parts.input.data, parts.input.mode)
        except NoEvaluationData as exc:
            log(f"evaluation skipped: {exc.message}")
        else:
            verbose = "auto" if spec.train.verbose and run_dir.writes else 0
            results["eval"] = frozen_features(spec.eval, parts.encoder, train, test,
                                              spec.seed, log, verbose)
            if spec.eval.baselines:
                results["baselines"] = baselines(spec.eval, spec.encoder, train, test,
                                                 spec.seed, log, verbose)
                log(comparison(results["eval"], results["baselines"]))
    return results


def _data_verbosity(spec, distribution):
    """The progress bars of the data phases (scan, decode, cache build):
    the chief's, when `train.verbose` asks for any output."""
    return "auto" if spec.train.verbose and distribution.is_chief else 0


def _silent(line):
    del line
