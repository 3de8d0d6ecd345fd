"""End to end: a spec trains with model.fit and writes a run directory."""

import json

import keras
import numpy as np
import pytest
import yaml

from contrastive.run import Run
from contrastive.spec import resolve
from contrastive.training import train
from contrastive.training.inputs import ShuffledBatches
from contrastive.training.metrics_log import MetricsLog
from contrastive_cli.main import main

from helpers import tiny_spec


def test_train_writes_a_run_directory(tiny_arrays, tmp_path, backend):
    spec = resolve(tiny_spec(tiny_arrays, train={"batch_size": 16, "epochs": 2, "verbose": 0}))
    results = train(spec, out=tmp_path / "run", log=lambda line: None).results
    run = tmp_path / "run"
    assert results["backend"] == backend
    assert results["epochs"] == 2 and results["steps"] == 2 * (48 // 16)
    assert np.isfinite(results["final_loss"])
    assert yaml.safe_load((run / "spec.yaml").read_text()) == spec.as_dict()
    assert json.loads((run / "results.json").read_text())["eval"].keys() == {
        "knn_accuracy", "knn_top5_accuracy", "linear_accuracy"}
    rows = (run / "metrics.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    assert header[0] == "epoch" and "loss" in header and len(rows) == 3
    encoder = keras.saving.load_model(run / "encoder.keras")
    h = keras.ops.convert_to_numpy(encoder(np.zeros((2, 16, 16, 3), "float32")))
    assert h.shape == (2, 8)


@pytest.fixture
def batch_end_threads(monkeypatch):
    """Whether each batch end of `StopOnNonFinite` ran in the main thread."""
    import threading

    from contrastive.training.callbacks import StopOnNonFinite

    in_main_thread = []
    original = StopOnNonFinite.on_train_batch_end

    def record(self, batch, logs=None):
        in_main_thread.append(threading.current_thread() is threading.main_thread())
        original(self, batch, logs)

    monkeypatch.setattr(StopOnNonFinite, "on_train_batch_end", record)
    return in_main_thread


def test_batch_ends_run_beside_the_step_loop_where_keras_allows(tiny_arrays, tmp_path, backend,
                                                                 batch_end_threads):
    """No callback of a run (TensorBoard and the kNN monitor included) makes
    Keras call batch ends in the loop that feeds the device: on jax and torch
    they run in a worker thread, so no step waits for the last one's loss."""
    spec = resolve(tiny_spec(tiny_arrays, train={"batch_size": 16, "epochs": 2, "verbose": 1},
                             eval={"knn": {"k": 5}, "linear": {"epochs": 1}, "monitor_every": 1},
                             output={"tensorboard": True, "plot": False}))
    train(spec, out=tmp_path / "run", log=lambda line: None)
    assert len(batch_end_threads) == 2 * (48 // 16)
    assert set(batch_end_threads) == {backend == "tensorflow"}  # Keras: tf is not thread-safe


def test_processes_training_together_read_the_loss_in_the_loop(batch_end_threads):
    """With several processes every one must stop after the same step, so the
    non-finite-loss stop reads each step's loss before the next step."""
    from contrastive.training.callbacks import StopOnNonFinite

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, epochs=1, verbose=0,
              callbacks=[StopOnNonFinite(single_process=False)])
    assert batch_end_threads == [True] * 4


def test_tensorboard_leaves_the_loop_only_writing_once_an_epoch(tmp_path):
    from contrastive.training.callbacks import EpochTensorBoard

    assert EpochTensorBoard(str(tmp_path), write_graph=False).async_safe
    assert not EpochTensorBoard(str(tmp_path)).async_safe  # writes the graph at the first batch
    assert not EpochTensorBoard(str(tmp_path), write_graph=False, update_freq="batch").async_safe
    assert not EpochTensorBoard(str(tmp_path), write_graph=False,
                                write_steps_per_second=True).async_safe


def test_a_non_finite_loss_stops_training_by_the_end_of_its_epoch(tiny_arrays, tmp_path, monkeypatch,
                                                                   backend):
    import threading

    from contrastive.training.callbacks import StopOnNonFinite

    syncs = []  # jax: the step's state put back into the variables, in which thread
    if backend == "jax":
        from keras.src.backend.jax.trainer import JAXTrainer

        sync = JAXTrainer.jax_state_sync
        monkeypatch.setattr(JAXTrainer, "jax_state_sync", lambda self: (
            syncs.append(threading.current_thread() is threading.main_thread()), sync(self)))
    ends = []
    original = StopOnNonFinite.on_train_batch_end

    def poisoned(self, batch, logs=None):
        ends.append(batch)
        original(self, batch, {"loss": float("nan")} if batch == 0 else logs)

    monkeypatch.setattr(StopOnNonFinite, "on_train_batch_end", poisoned)
    spec = resolve(tiny_spec(tiny_arrays, train={"batch_size": 8, "epochs": 3, "verbose": 0},
                             output={"plot": False}))
    results = train(spec, out=tmp_path / "run", log=lambda line: None).results
    assert results["epochs"] == 1 and len(ends) <= 48 // 8
    assert all(syncs)  # never from the worker thread, racing the loop's donation


def test_training_changes_the_encoder_and_lowers_the_loss(tiny_arrays, tmp_path):
    spec = resolve(tiny_spec(
        tiny_arrays, train={"batch_size": 16, "epochs": 4, "verbose": 0},
        eval={"knn": {"enabled": False}, "linear": {"enabled": False}}))
    train(spec, out=tmp_path / "run", log=lambda line: None)
    rows = (tmp_path / "run" / "metrics.csv").read_text().strip().splitlines()
    column = rows[0].split(",").index("loss")
    losses = [float(row.split(",")[column]) for row in rows[1:]]
    assert losses[-1] < losses[0]


def test_metrics_csv_has_the_monitor_columns_of_every_kth_epoch(tiny_arrays, tmp_path):
    spec = resolve(tiny_spec(
        tiny_arrays, train={"batch_size": 16, "epochs": 3, "verbose": 0},
        eval={"monitor_every": 2, "knn": {"enabled": False}, "linear": {"enabled": False}}))
    train(spec, out=tmp_path / "run", log=lambda line: None)
    rows = Run(tmp_path / "run").metrics
    assert [row["epoch"] for row in rows] == [0, 1, 2]
    assert not [column for column in rows[0] if column.startswith("val_")]
    assert rows[0]["knn_accuracy"] is None and rows[2]["knn_accuracy"] is None
    assert 0 <= rows[1]["knn_accuracy"] <= rows[1]["knn_top5_accuracy"] <= 1


def test_metrics_log_widens_the_file_and_keeps_rows_on_resume(tmp_path):
    path = tmp_path / "metrics.csv"
    log = MetricsLog(path)
    log.on_train_begin()
    log.on_epoch_end(0, {"loss": 2.0})
    log.on_epoch_end(1, {"loss": 1.5, "knn_accuracy": np.float32(0.5)})
    assert path.read_text().splitlines() == ["epoch,knn_accuracy,loss", "0,,2.0", "1,0.5,1.5"]
    resumed = MetricsLog(path, append=True)
    resumed.on_train_begin()
    resumed.on_epoch_end(2, {"loss": 1.25})
    assert path.read_text().splitlines()[1:] == ["0,,2.0", "1,0.5,1.5", "2,,1.25"]
    fresh = MetricsLog(path)
    fresh.on_train_begin()
    fresh.on_epoch_end(0, {"loss": 3.0})
    assert path.read_text().splitlines() == ["epoch,loss", "0,3.0"]


def test_existing_run_directory_is_never_overwritten(tiny_arrays, tmp_path, capsys, write_spec):
    run = tmp_path / "run"
    run.mkdir()
    (run / "encoder.keras").write_text("precious")
    file = write_spec(tiny_spec(tiny_arrays))
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(run)])
    assert info.value.code == 2
    assert "already exists" in capsys.readouterr().err
    assert (run / "encoder.keras").read_text() == "precious"


def test_batch_larger_than_the_data_is_a_spec_error(tiny_arrays, tmp_path, capsys, write_spec):
    file = write_spec(tiny_spec(tiny_arrays, train={"batch_size": 1000}))
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(tmp_path / "run")])
    assert info.value.code == 2
    assert f"{file}: train.batch_size: expected at most the 48 training images" in capsys.readouterr().err


def test_batches_are_full_shuffled_and_reproducible():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    first = ShuffledBatches((images,), 4, seed=3, steps_per_epoch=2)
    assert len(first) == 2
    epoch0 = np.concatenate([first[i][0].ravel() for i in range(2)])
    assert len(set(epoch0)) == 8
    first.follow().on_epoch_begin(1)
    epoch1 = np.concatenate([first[i][0].ravel() for i in range(2)])
    assert not np.array_equal(epoch0, epoch1)
    again = ShuffledBatches((images,), 4, seed=3, steps_per_epoch=2, first_epoch=1)
    assert np.array_equal(np.concatenate([again[i][0].ravel() for i in range(2)]), epoch1)


def test_curves_leave_out_metrics_without_values(tmp_path):
    from contrastive.plots import plotted_columns

    rows = [{"epoch": "0", "loss": "5.1", "val_loss": "NA", "learning_rate": "0.1"},
            {"epoch": "1", "loss": "4.9", "val_loss": "", "learning_rate": "0.1"}]
    assert plotted_columns(rows) == ["loss"]


def test_unreadable_images_are_one_warning_line(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    root = tmp_path / "images"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((8, 8, 3), 20 * i, np.uint8)).save(root / c / f"{i}.png")
    (root / "a" / "broken.png").write_bytes(b"not a png")
    spec = {"data": {"name": "image_folder", "path": str(root), "size": 8, "cache": False},
            "encoder": {"name": "small_cnn", "widths": [4]}, "augment": None,
            "head": {"name": "mlp", "output_dim": 4},
            "train": {"batch_size": 8, "epochs": 1, "verbose": 0, "input": "memory"},
            "eval": {"knn": {"enabled": False}, "linear": {"enabled": False}},
            "output": {"tensorboard": False, "plot": False, "save_encoder": False}}
    file = tmp_path / "spec.json"
    file.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "contrastive_cli.main", "train", str(file),
                           "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    warned = [line for line in done.stderr.splitlines() if "unreadable" in line]
    assert warned == [f"warning: skipped 1 unreadable image(s): {root / 'a' / 'broken.png'} "
                      "(not an image PIL can read)"]


def test_the_augmented_linear_probe_runs_after_pretraining_for_h_and_both_baselines(
        tiny_arrays, tmp_path, monkeypatch):
    import importlib

    # The module, which the package's `evaluate` function shadows as an attribute.
    evaluation = importlib.import_module("contrastive.evaluation.evaluate")
    calls = []
    real = evaluation.augmented_linear_accuracy

    def spy(encoder, train, test, train_features, **settings):
        calls.append(train_features.shape[1])
        return real(encoder, train, test, train_features, **settings)

    monkeypatch.setattr(evaluation, "augmented_linear_accuracy", spy)
    spec = resolve(tiny_spec(tiny_arrays, eval={"knn": {"enabled": False},
                                                "linear": {"epochs": 1, "augment": True}}))
    results = train(spec, out=tmp_path / "run", log=lambda line: None).results
    # h (8 values), the raw pixels (16 x 16 x 3), the random encoder's h.
    assert calls == [8, 768, 8]
    for scores in (results["eval"], *results["baselines"].values()):
        assert 0.0 <= scores["linear_accuracy"] <= 1.0


def test_an_unreadable_held_out_image_under_on_error_fail_fails_the_evaluation(tmp_path,
                                                                               capsys):
    from PIL import Image

    from contrastive_cli.main import main

    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(8):
                Image.fromarray(np.full((8, 8, 3), 30 * i, np.uint8)).save(
                    tmp_path / split / c / f"{i}.png")
    (tmp_path / "test" / "a" / "zero.png").write_bytes(b"")
    spec = {"data": {"name": "image_folder", "path": str(tmp_path / "train"), "size": 8,
                     "test_path": str(tmp_path / "test"), "cache": False, "on_error": "fail"},
            "encoder": {"name": "small_cnn", "widths": [4]}, "augment": None,
            "head": {"name": "mlp", "output_dim": 4},
            "train": {"batch_size": 8, "epochs": 1, "verbose": 0, "input": "memory"},
            "eval": {"knn": {"k": 3}, "linear": {"enabled": False}},
            "output": {"tensorboard": False, "plot": False}}
    file = tmp_path / "spec.json"
    file.write_text(json.dumps(spec))
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(run)])
    err = capsys.readouterr().err.strip().splitlines()
    # Before, the evaluation was skipped and the run ended with exit 0.
    assert info.value.code == 2 and len(err) == 1, err
    assert str(tmp_path / "test" / "a" / "zero.png") in err[0], err
    assert err[0].endswith(f"; continue with: contrastive train --resume {run}"), err
    assert not (run / "results.json").exists()
    (tmp_path / "test" / "a" / "zero.png").unlink()
    with pytest.raises(SystemExit) as info:
        main(["train", "--resume", str(run)])
    assert info.value.code == 0
    assert "knn_accuracy" in json.loads((run / "results.json").read_text())["eval"]
