"""The input modes of training: memory, device and stream see the same data."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from contrastive import training
from contrastive.datasets.decode import file_batches
from contrastive.datasets.image_folder import ImageFolder
from contrastive.errors import DataError, SpecError
from contrastive.spec import load_spec
from contrastive.training import inputs
from contrastive.training.inputs import epoch_order
from tests.helpers import tiny_spec

pytest.importorskip("tensorflow")


@pytest.fixture
def png_folder(tmp_path):
    """36 random 16x16 PNG images in 3 class folders; returns the folder."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in range(3):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i:02d}.png")
    return root


def folder_spec(tmp_path, root, mode, optimizer=None, **train):
    spec = tiny_spec(tmp_path / "unused.npz",
                     data={"name": "image_folder", "path": str(root), "size": 16},
                     augment={"name": "simclr", "blur_probability": 0.0})
    spec["train"].update({"input": mode, "batch_size": 12, "epochs": 2, "steps_per_epoch": 3},
                         **train)
    spec["eval"] = {"knn": {"enabled": False}, "linear": {"enabled": False}}
    spec["output"] = {"save_encoder": False, "plot": False, "tensorboard": False}
    if optimizer:
        spec["optimizer"] = optimizer
    path = tmp_path / f"{mode}.json"
    path.write_text(json.dumps(spec))
    return load_spec(path)


def final_weights(tmp_path, root, mode):
    spec = folder_spec(tmp_path, root, mode, optimizer={"name": "sgd", "learning_rate": 0.002})
    results = training.train(spec, out=tmp_path / f"run-{mode}", log=lambda line: None).results
    state = json.loads((tmp_path / f"run-{mode}" / "checkpoint.json").read_text())
    return results, tmp_path / f"run-{mode}" / state["weights"]


def read_weights(path):
    import h5py

    values = []
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, item: values.append((name, item[()]))
                        if isinstance(item, h5py.Dataset) else None)
    return dict(values)


def test_epoch_order_is_a_sorted_permutation_per_batch():
    rows = epoch_order(10, 4, 2, seed=3, epoch=0)
    assert rows.shape == (2, 4)
    assert len(set(rows.ravel())) == 8
    assert np.all(np.diff(rows, axis=1) > 0)
    assert np.array_equal(rows, epoch_order(10, 4, 2, seed=3, epoch=0))
    assert not np.array_equal(rows, epoch_order(10, 4, 2, seed=3, epoch=1))
    longer = epoch_order(5, 4, 3, seed=0, epoch=0)  # an epoch longer than the data
    assert np.bincount(longer.ravel(), minlength=5).min() >= 2


def test_stream_yields_the_batches_memory_would(png_folder):
    from contrastive.training.inputs import ShuffledBatches, StreamInput

    folder = ImageFolder(str(png_folder), size=16)
    arrays, files = folder.load(), folder.files()
    assert np.array_equal(arrays.labels, files.labels)
    memory = ShuffledBatches((arrays.images, arrays.labels), 12, seed=5, steps_per_epoch=3,
                             first_epoch=1)
    stream = StreamInput(files, 12, seed=5, steps_per_epoch=3, with_labels=True)
    streamed = list(stream.dataset(first_epoch=1, epochs=3).as_numpy_iterator())
    assert len(streamed) == 6
    for step, (images, labels) in enumerate(streamed):
        memory.follow().on_epoch_begin(1 + step // 3)
        expected_images, expected_labels = memory[step % 3]
        np.testing.assert_array_equal(images, expected_images)
        np.testing.assert_array_equal(labels, expected_labels)


def test_stream_resizes_as_memory_does(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "big"
    (root / "a").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 24, 3), dtype=np.uint8)).save(
            root / "a" / f"{i}.png")
    folder = ImageFolder(str(root), size=16, cache=False)
    streamed = np.concatenate(list(file_batches(folder.files(), batch_size=3)))
    loaded = folder.load().images
    assert streamed.shape == loaded.shape == (4, 16, 16, 3)
    # PIL and TensorFlow resample differently near edges; they agree closely.
    assert np.abs(streamed.astype(int) - loaded.astype(int)).mean() < 8


def test_the_three_inputs_train_to_the_same_weights(tmp_path, png_folder):
    # The modes feed batches of different static shapes, so the backends may
    # pick different kernels: the weights agree to rounding, not bit for bit.
    weights = {}
    for mode in ("memory", "device", "stream"):
        results, path = final_weights(tmp_path, png_folder, mode)
        assert results["epochs"] == 2
        weights[mode] = read_weights(path)
    assert weights["memory"].keys() == weights["device"].keys() == weights["stream"].keys()
    assert not any("resident" in name for name in weights["device"])
    for name, value in weights["memory"].items():
        np.testing.assert_allclose(weights["device"][name], value, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(weights["stream"][name], value, rtol=1e-3, atol=1e-4)


def test_device_input_feeds_the_probe(tmp_path, png_folder):
    spec = folder_spec(tmp_path, png_folder, "device")
    training.train(spec, out=tmp_path / "probe", log=lambda line: None)
    header = (tmp_path / "probe" / "metrics.csv").read_text().splitlines()[0]
    assert "probe_accuracy" in header.split(",")


def test_auto_holds_small_sets_on_the_device(png_folder, monkeypatch):
    folder = ImageFolder(str(png_folder), size=16)
    assert inputs.load_split(folder, "auto")[0] == "device"
    monkeypatch.setattr(inputs, "DEVICE_BYTES", 10)
    assert inputs.load_split(folder, "auto")[0] == "memory"
    monkeypatch.setattr(inputs, "host_memory_bytes", lambda: 100)
    mode, data = inputs.load_split(folder, "auto")
    assert mode == "stream" and len(data) == 36


def test_device_input_is_refused_where_the_distribution_cannot_hold_it(png_folder):
    folder = ImageFolder(str(png_folder), size=16)
    why = "the workers cannot hold it"
    with pytest.raises(SpecError, match="train.input: expected memory, stream or auto, "
                                        "received device: the workers cannot hold it"):
        inputs.training_input(folder, "device", 4, 0, no_device=why)
    assert inputs.training_input(folder, "auto", 4, 0, no_device=why).mode == "memory"
    assert inputs.training_input(folder, "auto", 4, 0).mode == "device"


def test_stream_needs_a_dataset_of_files(tmp_path, tiny_arrays):
    from contrastive.datasets.arrays import ArrayFiles

    dataset = ArrayFiles(str(tiny_arrays))
    with pytest.raises(SpecError, match="train.input: expected a dataset read from image files"):
        inputs.load_split(dataset, "stream")


def test_stream_reports_unreadable_files_before_training(tmp_path, png_folder):
    (png_folder / "class0" / "00.png").write_bytes(
        (png_folder / "class0" / "00.png").read_bytes()[:60])
    (png_folder / "class1" / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="skipped 2 unreadable") as caught:
        files = ImageFolder(str(png_folder), size=16).files()
    message = str(caught[0].message)
    assert "00.png" in message and "notes.txt" in message
    assert len(files) == 35 and len(files.skipped) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="2 unreadable image"):
            ImageFolder(str(png_folder), size=16, on_error="fail").files()


def test_stream_extracts_an_archive_once(tmp_path, png_folder):
    import tarfile

    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(png_folder, arcname="train")
    first = ImageFolder(str(archive), size=16).files()
    second = ImageFolder(str(archive), size=16).files()
    assert len(first) == 36 and first.paths == second.paths
    assert first.class_names == ("class0", "class1", "class2")
    np.testing.assert_array_equal(
        np.concatenate(list(file_batches(first))),
        ImageFolder(str(png_folder), size=16).load().images)


class Interrupted(Exception):
    pass


@pytest.mark.heavy
@pytest.mark.parametrize("mode", ["device", "stream"])
def test_an_interrupted_run_resumes_exactly(tmp_path, png_folder, monkeypatch, mode):
    from contrastive.training.callbacks import StopOnNonFinite

    def crash_after_epoch_two(self, epoch, logs=None):
        if epoch == 1:  # before the epoch's checkpoint: the last one is epoch 1's
            raise Interrupted

    straight = training.train(folder_spec(tmp_path, png_folder, mode, epochs=3),
                              out=tmp_path / "straight", log=lambda line: None).results
    with monkeypatch.context() as patch:
        patch.setattr(StopOnNonFinite, "on_epoch_end", crash_after_epoch_two, raising=False)
        with pytest.raises(Interrupted):
            training.train(folder_spec(tmp_path, png_folder, mode, epochs=3),
                           out=tmp_path / "stopped", log=lambda line: None)
    assert json.loads((tmp_path / "stopped" / "checkpoint.json").read_text())["epoch"] == 1
    resumed = training.resume(tmp_path / "stopped", log=lambda line: None).results
    assert resumed["epochs"] == straight["epochs"] == 3
    ours, theirs = (read_weights(tmp_path / run / json.loads(
        (tmp_path / run / "checkpoint.json").read_text())["weights"]) for run in ("stopped", "straight"))
    for name, value in theirs.items():
        np.testing.assert_allclose(ours[name], value, rtol=1e-5, atol=1e-6)


def test_a_streamed_run_is_evaluated_from_the_files(tmp_path, png_folder, capsys):
    import keras

    from contrastive.evaluation import encode, features_of
    from contrastive_cli.main import main

    data = tiny_spec(tmp_path / "unused.npz",
                     data={"name": "image_folder", "path": str(png_folder), "size": 16,
                           "test_path": str(png_folder)})
    data["train"].update({"input": "stream", "batch_size": 12})
    data["output"] = {"plot": False, "tensorboard": False}
    data["eval"] = {"knn": {"k": 5}, "linear": {"epochs": 2}}
    file = tmp_path / "stream.json"
    file.write_text(json.dumps(data))
    results = training.train(load_spec(file), out=tmp_path / "run", log=lambda line: None).results
    assert 0 <= results["eval"]["knn_accuracy"] <= 1
    encoder = keras.saving.load_model(tmp_path / "run" / "encoder.keras")
    folder = ImageFolder(str(png_folder), size=16)
    np.testing.assert_allclose(features_of(encoder, folder.files()),
                               encode(encoder, folder.load().images), rtol=1e-5, atol=1e-5)
    for args in (["eval", "knn", "--k", "5"], ["eval", "finetune", "--epochs", "1"]):
        with pytest.raises(SystemExit) as info:
            main([*args, "--run", str(tmp_path / "run"), "--json"])
        out = capsys.readouterr().out
        assert info.value.code == 0 and json.loads(out)["test"] == 36
    with pytest.raises(SystemExit) as info:
        main(["embed", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "h.npy")])
    assert info.value.code == 0 and np.load(tmp_path / "h.npy").shape[0] == 36
