"""Checkpoints: a killed run resumes to the weights of an uninterrupted one;
a non-finite loss stops a run and keeps the last good checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
import yaml

from contrastive.registry import get_registry
from contrastive.run import Run
from contrastive.spec import resolve
from contrastive.training import resume, train

from helpers import tiny_spec

QUIET_OUTPUT = {"tensorboard": False, "plot": False}
NO_EVAL = {"knn": {"enabled": False}, "linear": {"enabled": False}}


def _resume_spec(tiny_arrays, epochs):
    return tiny_spec(
        tiny_arrays,
        augment={"name": "simclr", "preset": "cifar10"},
        train={"batch_size": 16, "epochs": epochs, "steps_per_epoch": 2, "verbose": 0},
        output=QUIET_OUTPUT,
        eval=NO_EVAL,
    )


def _weights(run_dir):
    model = keras.saving.load_model(run_dir / "encoder.keras")
    return [np.asarray(w) for w in model.get_weights()]


@pytest.mark.heavy
def test_killed_run_resumes_to_the_uninterrupted_weights(tiny_arrays, tmp_path):
    epochs = 12
    data = _resume_spec(tiny_arrays, epochs)
    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(data))
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "contrastive_cli.main", "train", str(file), "--out", str(killed)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    state_file = killed / "checkpoint.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 2:
            break
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stopped_at = json.loads(state_file.read_text())["epoch"]
    assert 2 <= stopped_at < epochs, stopped_at
    assert not (killed / "encoder.keras").exists()

    results = resume(killed, log=lambda line: None).results
    assert results["epochs"] == epochs
    straight = tmp_path / "straight"
    train(resolve(data, file=str(file)), out=straight, log=lambda line: None)
    for resumed, uninterrupted in zip(_weights(killed), _weights(straight), strict=True):
        np.testing.assert_allclose(resumed, uninterrupted, rtol=1e-5, atol=1e-6)
    rows = (killed / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + epochs  # the header once, then every epoch


@pytest.mark.parametrize("number, said, status", [
    (signal.SIGINT, "interrupted", 1),
    (signal.SIGTERM, "terminated", -signal.SIGTERM),  # ended by the signal
])
def test_ctrl_c_or_kill_stops_a_run_in_one_line_and_it_resumes(tiny_arrays, tmp_path, number,
                                                                said, status):
    data = _resume_spec(tiny_arrays, 12)
    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    # SIGINT as a terminal sends it: Python's own handler first, which a
    # process started from a background job would not have (SIGINT ignored).
    process = subprocess.Popen(
        [sys.executable, "-c", "import signal; signal.signal(signal.SIGINT, "
         "signal.default_int_handler); from contrastive_cli.main import main; main()",
         "train", str(file), "--out", str(run)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    state_file = run / "checkpoint.json"
    deadline = time.time() + 300
    while not (state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 2):
        assert process.poll() is None and time.time() < deadline, "the run ended too soon"
        time.sleep(0.05)
    process.send_signal(number)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    assert err.strip().splitlines()[-1] == (
        f"{said}; continue with: contrastive train --resume {run}"), err
    assert "Traceback" not in err
    stopped_at = json.loads(state_file.read_text())["epoch"]
    assert 2 <= stopped_at < 12
    assert resume(run, log=lambda line: None).results["epochs"] == 12


def test_a_lost_interrupt_is_raised_again_before_the_next_batch(monkeypatch):
    from contrastive import interrupts
    from contrastive.training.callbacks import Interruptible

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    seen = []
    monkeypatch.setattr(interrupts, "_interrupted", None)
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, epochs=1, verbose=0,
              callbacks=[Interruptible(), record])
    assert seen == [0, 1, 2, 3]  # no interrupt: no effect
    # as the handler does, its exception lost
    monkeypatch.setattr(interrupts, "_interrupted", interrupts.Interrupted)
    seen.clear()
    with pytest.raises(interrupts.Interrupted):
        model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, epochs=1, verbose=0,
                  callbacks=[Interruptible(), record])
    assert seen == []


def test_sigterm_keeps_its_default_action_in_a_process_of_a_multi_process_run():
    # Its handler could not run while the process waits in a collective.
    from contrastive import interrupts

    previous = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        interrupts.install()
        assert signal.getsignal(signal.SIGTERM) is interrupts._handler
        interrupts.terminate_at_once()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        interrupts.install()  # an ignored SIGTERM stays ignored
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        sys.unraisablehook = hook
        signal.set_wakeup_fd(-1)  # the watchdog `install` started


def test_the_launchers_variables_keep_sigterm_s_default_action():
    from contrastive.interrupts import _several_processes

    assert not _several_processes({})
    assert not _several_processes({"WORLD_SIZE": "1", "KERAS_DISTRIBUTION_NUM_PROCESSES": ""})
    for environ in [{"WORLD_SIZE": "2"}, {"KERAS_DISTRIBUTION_NUM_PROCESSES": "4"},
                    {"TF_CONFIG": '{"cluster": {}}'}, {"CONTRASTIVE_SUPERVISED": "1"}]:
        assert _several_processes(environ), environ


def test_a_process_that_outlives_sigterm_is_ended_by_the_watchdog():
    # Python's handler raises, but the process goes on (as one waiting in
    # native code would, where the handler cannot run at all).
    script = (
        "import sys, time\n"
        "from contrastive import interrupts\n"
        "interrupts.GRACE_SECONDS = 1\n"
        "interrupts.install()\n"
        "for step in range(600):\n"
        "    try:\n"
        "        if step == 0:\n"
        "            print('ready', flush=True)\n"
        "        time.sleep(0.1)\n"
        "    except interrupts.Terminated:\n"
        "        pass\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "ready"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "still running 1 s after SIGTERM" in err


def test_a_lost_interrupt_fails_the_command_that_went_on(monkeypatch, tiny_arrays, tmp_path,
                                                         capsys):
    from contrastive import interrupts
    from contrastive_cli.main import main

    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(_resume_spec(tiny_arrays, 1)))
    # the handler ran, its exception lost
    monkeypatch.setattr(interrupts, "_interrupted", interrupts.Interrupted)
    with pytest.raises(SystemExit) as info:
        main(["validate", str(file)])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == ["interrupted"]


class FailsLater(keras.layers.Layer):
    """An encoder whose output turns NaN after `after` training steps."""

    def __init__(self, after=6, **kwargs):
        super().__init__(**kwargs)
        self.after = after
        self.dense = keras.layers.Dense(8)
        self.steps = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                     dtype="float32", name="steps")

    def call(self, images, training=False):
        h = self.dense(keras.ops.mean(images, axis=(1, 2)))
        if training:
            self.steps.assign_add(1.0)
        return h * keras.ops.where(self.steps > self.after, float("nan"), 1.0)


@pytest.fixture
def failing_encoder():
    registry = get_registry("encoders")
    registry.register("fails_later", FailsLater, override=True)
    yield
    registry.unregister("fails_later")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
        tiny_arrays, tmp_path, failing_encoder):
    data = tiny_spec(
        tiny_arrays, encoder={"name": "fails_later", "after": 6},
        train={"batch_size": 16, "epochs": 5, "steps_per_epoch": 3, "verbose": 0},
        output=QUIET_OUTPUT, eval=NO_EVAL)
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError) as info:
        train(resolve(data), out=run, log=lambda line: None)
    message = str(info.value)
    assert "the loss became nan in epoch 3" in message
    assert str(run / "checkpoints" / "epoch-0002.weights.h5") in message
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 2
    assert os.path.exists(run / "checkpoints" / "epoch-0002.weights.h5")


@pytest.fixture
def three_epochs(tiny_arrays, tmp_path):
    """A finished 3-epoch run with a checkpoint every epoch, and the same
    run's spec; returns (run directory, spec mapping)."""
    data = _resume_spec(tiny_arrays, 3)
    run = tmp_path / "run"
    train(resolve(data), out=run, log=lambda line: None)
    return run, data


def test_a_truncated_newest_checkpoint_falls_back_to_the_previous_one(three_epochs, tmp_path):
    run, data = three_epochs
    straight = tmp_path / "straight"
    train(resolve(data), out=straight, log=lambda line: None)
    newest = run / "checkpoints" / "epoch-0003.weights.h5"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"epoch-0003\.weights\.h5: .*truncated"):
        results = resume(run, log=lambda line: None).results
    assert results["epochs"] == 3
    for resumed, uninterrupted in zip(_weights(run), _weights(straight), strict=True):
        np.testing.assert_allclose(resumed, uninterrupted, rtol=1e-5, atol=1e-6)
    assert (run / "checkpoints" / "epoch-0002.weights.h5").exists()


def test_a_damaged_or_missing_state_file_falls_back_to_the_records(three_epochs):
    run, _ = three_epochs
    (run / "checkpoint.json").write_text("")
    with pytest.warns(UserWarning, match=r"checkpoint\.json: unreadable checkpoint state"):
        assert resume(run, log=lambda line: None).results["epochs"] == 3
    (run / "checkpoint.json").unlink()
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert resume(run, log=lambda line: None).results["epochs"] == 3
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_resuming_removes_the_temporary_files_of_a_killed_save(three_epochs, tiny_arrays):
    run, data = three_epochs
    data["train"]["epochs"] = 4  # one more epoch, so that the run goes on
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    leftovers = [run / "checkpoints" / ".tmp-epoch-0004.weights.h5",
                 run / "checkpoints" / ".epoch-0004.json.tmp", run / ".checkpoint.json.tmp",
                 run / "metrics.csv.tmp"]
    for path in leftovers:
        path.write_bytes(b"half a file")
    kept = {p.name: p.read_bytes() for p in (run / "checkpoints").glob("epoch-0003*")}
    assert resume(run, log=lambda line: None).results["epochs"] == 4
    assert not any(path.exists() for path in leftovers)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch-0003.json", "epoch-0003.weights.h5", "epoch-0004.json", "epoch-0004.weights.h5"]
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").glob("epoch-0003*")} == kept


def test_resuming_with_an_edited_spec_says_what_changed(three_epochs):
    run, data = three_epochs
    said = []
    resume(run, log=said.append)
    assert not [line for line in said if "differs" in line], said
    state = json.loads((run / "checkpoint.json").read_text())
    assert state["spec"]["train"]["epochs"] == 3
    data["train"]["epochs"] = 4
    data["seed"] = data.get("seed", 0) + 5
    data["optimizer"]["learning_rate"] = 0.1
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    said.clear()
    assert resume(run, log=said.append).results["epochs"] == 4
    changed = [line for line in said if "differs" in line]
    assert len(changed) == 1 and changed[0].startswith("warning: "), said
    assert "epoch-0003.weights.h5" in changed[0]
    assert f"seed: {data['seed'] - 5} -> {data['seed']}" in changed[0]
    assert "train.epochs: 3 -> 4" in changed[0] and 'optimizer.learning_rate: 0.05 -> 0.1' in changed[0]
    assert json.loads((run / "checkpoint.json").read_text())["spec"]["train"]["epochs"] == 4


def test_spec_changes_lists_leaves_and_counts_the_rest():
    from contrastive.training.checkpoints import spec_changes

    old = {"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}}
    assert spec_changes(old, old) == [] and spec_changes(None, old) == []
    assert spec_changes(old, {"a": {"b": 2, "c": [1, 2]}, "e": {"f": "x"}}) == [
        "a.b: 1 -> 2", "d: null -> (absent)", 'e: {} -> (absent)', 'e.f: (absent) -> "x"']
    many = {str(i): i for i in range(10)}
    assert spec_changes(many, {})[-1] == "4 more" and len(spec_changes(many, {})) == 7


def test_damaged_metrics_rows_are_dropped_on_resume(three_epochs):
    run, data = three_epochs
    data["train"]["epochs"] = 4
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    metrics = run / "metrics.csv"
    # a byte that is not UTF-8 damages its own row only
    metrics.write_bytes(metrics.read_bytes() + b"\nnot a row\n2.5,1\nnote: \xe9\n")
    assert resume(run, log=lambda line: None).results["epochs"] == 4
    assert [row.split(",")[0] for row in metrics.read_text().splitlines()] == [
        "epoch", "0", "1", "2", "3"]


def test_resuming_a_finished_run_changes_nothing(three_epochs, capsys):
    from contrastive_cli.main import main

    run, data = three_epochs
    files = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}
    said = []
    assert resume(run, log=said.append).results["epochs"] == 3
    assert said == [f"{run} has finished its 3 epochs and written its results: nothing to "
                    "resume (to train on, raise train.epochs in its spec.yaml)"]
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(run)])
    out = capsys.readouterr().out.strip().splitlines()
    assert info.value.code == 0 and out == said, out
    assert {p: (p.stat().st_mtime_ns, p.read_bytes())
            for p in run.rglob("*") if p.is_file()} == files
    data["train"]["epochs"] = 2  # fewer than the checkpoint's
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and err == [
        f"error: {run / 'spec.yaml'}: train.epochs: expected at least the 3 epochs of the "
        f"checkpoint {run / 'checkpoints' / 'epoch-0003.weights.h5'}, received 2"], err


def test_an_interrupt_while_the_run_writes_its_files_names_resume(
        tiny_arrays, tmp_path, capsys, monkeypatch):
    from contrastive.interrupts import Interrupted
    from contrastive.training.run_dir import RunDir
    from contrastive_cli.main import main

    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(_resume_spec(tiny_arrays, 2)))
    run = tmp_path / "run"

    for interrupt, said in [(Interrupted, "interrupted"), (KeyboardInterrupt, "aborted")]:
        def interrupted(*args, interrupt=interrupt):
            raise interrupt

        monkeypatch.setattr(RunDir, "finish", interrupted)
        with pytest.raises(SystemExit) as info:
            main(["train", str(file), "--out", str(run)] if said == "interrupted"
                 else ["train", "--resume", str(run)])
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 1
        assert err[-1] == f"{said}; continue with: contrastive train --resume {run}", err


def test_a_run_killed_while_evaluating_resumes_to_its_results(three_epochs):
    run, data = three_epochs
    data["eval"] = {"knn": {"k": 5}, "linear": {"enabled": False}}
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    for name in ("results.json", "encoder.keras", "encoder_head1.keras"):
        (run / name).unlink(missing_ok=True)
    (run / ".tmp-123-encoder.keras").write_bytes(b"half")
    results = resume(run, log=lambda line: None).results
    last = Run(run).metrics[-1]
    assert results["epochs"] == 3 and results["final_loss"] == last["loss"] is not None
    assert results["seconds"] is None and results["images_per_second"] is None
    assert 0 <= results["eval"]["knn_accuracy"] <= 1
    assert (run / "encoder.keras").is_file() and not (run / ".tmp-123-encoder.keras").exists()


def test_a_run_killed_while_evaluating_without_metrics_rows_resumes(three_epochs):
    run, data = three_epochs
    data["output"] = {**data["output"], "plot": True}  # nothing left to plot
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    (run / "results.json").unlink()
    (run / "metrics.csv").write_text("epoch,loss\n")
    with pytest.warns(UserWarning, match="lacks the metrics of 3 of the 3 epochs"):
        results = resume(run, log=lambda line: None).results
    assert results["epochs"] == 3 and results["final_loss"] is None
    assert not (run / "curves.png").exists()


def test_resuming_on_another_backend_or_without_metrics_says_so(three_epochs):
    run, data = three_epochs
    data["train"]["epochs"] = 4
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    state = json.loads((run / "checkpoint.json").read_text())
    assert state["backend"] == keras.backend.backend()
    (run / "checkpoint.json").write_text(json.dumps({**state, "backend": "elsewhere"}))
    (run / "metrics.csv").unlink()
    said = []
    with pytest.warns(UserWarning, match=r"metrics\.csv is missing: the metrics of epochs 1-3"):
        resume(run, log=said.append)
    assert [line for line in said if "was written on the elsewhere backend, the run goes on "
            f"with {keras.backend.backend()}" in line], said
    assert [row["epoch"] for row in Run(run).metrics] == [3]


def test_damaged_results_are_one_line(three_epochs):
    from contrastive.errors import SpecError

    run, _ = three_epochs
    (run / "results.json").write_text('{"epochs": 3, "fin')
    with pytest.raises(SpecError, match=r"results\.json: expected the JSON results .* damaged "
                       r"file .*contrastive train --resume"):
        Run(run).results
    said = []
    assert resume(run, log=said.append).results["epochs"] == 3  # evaluated again
    assert not [line for line in said if "nothing to resume" in line]


def test_weights_without_their_state_record_are_no_checkpoint(three_epochs):
    run, _ = three_epochs
    (run / "checkpoint.json").unlink()
    for record in (run / "checkpoints").glob("*.json"):
        record.unlink()  # killed after renaming the weights, before their record
    said = []
    assert resume(run, log=said.append).results["epochs"] == 3
    assert said[0] == f"{run} has no checkpoint yet: starting from epoch 0", said


def test_no_intact_checkpoint_is_one_line_and_deletes_nothing(three_epochs, capsys):
    from contrastive_cli.main import main

    run, _ = three_epochs
    for name in ("epoch-0002.weights.h5", "epoch-0003.weights.h5"):
        path = run / "checkpoints" / name
        path.write_bytes(b"\0" * path.stat().st_size)  # the right size, the wrong bytes
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and err[-1].startswith("error: "), err
    assert "no intact checkpoint" in err[-1] and "epoch-0002.weights.h5" in err[-1]
    assert "SHA-256 differs" in err[-1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == files


def test_a_checkpoint_that_does_not_fit_an_edited_spec_is_one_line(three_epochs, capsys):
    from contrastive_cli.main import main

    run, data = three_epochs
    data["encoder"]["widths"] = [w * 2 for w in data["encoder"]["widths"]]
    data["train"]["epochs"] = 4
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    files = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    with pytest.raises(SystemExit) as info, warnings.catch_warnings():
        warnings.simplefilter("error")  # Keras' warnings before it fails are not said
        main(["train", "--resume", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1, err
    assert "epoch-0003.weights.h5: the checkpoint does not fit the model spec.yaml builds" in err[0]
    assert "spec.yaml changed since: encoder.widths: [" in err[0] and "train.epochs: 3 -> 4" in err[0]
    assert len(err[0]) < 700
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == files


def test_resuming_a_read_only_run_is_one_line(three_epochs, capsys, monkeypatch):
    import importlib

    from contrastive_cli.main import main

    run_dir_module = importlib.import_module("contrastive.training.run_dir")
    run, data = three_epochs
    data["train"]["epochs"] = 4  # a run that goes on
    (run / "spec.yaml").write_text(yaml.safe_dump(data))
    real = os.access
    # As a user without write permission would see it (the tests may run as root).
    monkeypatch.setattr(run_dir_module.os, "access", lambda path, mode: (
        False if str(path).endswith("metrics.csv") else real(path, mode)))
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and err == [
        f"error: {run}: --resume: {run / 'metrics.csv'} is not writable; resuming writes "
        "checkpoints and metrics there"], err


def test_resuming_what_is_not_a_run_is_one_line(tmp_path, capsys):
    from contrastive_cli.main import main

    (tmp_path / "empty").mkdir()
    for name, problem in [("nope", "no such directory"), ("empty", "it holds no spec.yaml")]:
        with pytest.raises(SystemExit) as info:
            main(["train", "--resume", str(tmp_path / name)])
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and err == [
            f"error: {tmp_path / name}: --resume: expected the directory of a run `train` "
            f"started (its spec.yaml and checkpoints), received '{tmp_path / name}': {problem}"]
    assert not (tmp_path / "nope").exists()


def test_a_run_that_fails_before_its_first_checkpoint_can_be_rerun(
        tiny_arrays, tmp_path, failing_encoder, capsys):
    from contrastive_cli.main import main

    data = tiny_spec(tiny_arrays, encoder={"name": "fails_later", "after": 0},
                     train={"batch_size": 16, "epochs": 2, "steps_per_epoch": 2, "verbose": 0},
                     output=QUIET_OUTPUT, eval=NO_EVAL)
    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(run)])
    assert info.value.code == 1 and "loss became nan" in capsys.readouterr().err
    assert not run.exists()
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(run), "--set", "encoder.after=100"])
    assert info.value.code == 0, capsys.readouterr().err
    assert (run / "results.json").exists()
    # In an --out that existed (empty), all the failed run wrote is removed.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(empty), "--set", "output.tensorboard=true"])
    assert info.value.code == 1 and "loss became nan" in capsys.readouterr().err
    assert empty.is_dir() and not any(empty.iterdir())


def test_a_disk_too_full_for_a_checkpoint_is_one_line_and_keeps_the_previous_ones(
        tiny_arrays, tmp_path, capsys, monkeypatch):
    import collections
    import shutil

    from contrastive.training import checkpoints
    from contrastive_cli.main import main

    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(_resume_spec(tiny_arrays, 3)))
    run = tmp_path / "run"
    real = shutil.disk_usage
    usage = collections.namedtuple("usage", "total used free")
    saves = []

    def full_after_two(path):
        saves.append(path)
        free = real(path).free if len(saves) <= 2 else 1000
        return usage(10**12, 10**12 - free, free)

    monkeypatch.setattr(checkpoints.shutil, "disk_usage", full_after_two)
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(run)])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "no space left on the disk of" in err and "epoch-0003.weights.h5" in err
    assert "0.0 MB are free" in err
    left = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert left == ["epoch-0001.json", "epoch-0001.weights.h5", "epoch-0002.json",
                    "epoch-0002.weights.h5"]
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 2
