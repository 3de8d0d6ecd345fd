"""WebDataset-style tar shards (`tar_shards`), and images that become
unreadable while training streams them: skipped, counted and named."""

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

import contrastive
from contrastive.datasets.image_folder import ImageFolder
from contrastive.datasets.tar_shards import TarShards
from contrastive.errors import DataError
from contrastive.training.inputs import StreamInput

pytest.importorskip("tensorflow")


def png(seed, size=12):
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder, count=32, per_shard=8, label="cls", broken=()):
    """`count` samples `NNNNN.png` (+ a label member) in shards of
    `per_shard`; the samples of `broken` hold bytes that are no image."""
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(-(-count // per_shard)):
        with tarfile.open(folder / f"train-{shard:03d}.tar", "w") as tar:
            for i in range(shard * per_shard, min(count, (shard + 1) * per_shard)):
                add(tar, f"{i:05d}.png", b"\x89PNG broken" if i in broken else png(i))
                if label == "cls":
                    add(tar, f"{i:05d}.cls", str(i % 2).encode())
                elif label == "json":
                    add(tar, f"{i:05d}.json", json.dumps({"label": "cat" if i % 2 else "dog"}
                                                         ).encode())
    return folder


def spec(data, mode):
    return {
        "data": {"name": "tar_shards", "size": 12, "cache": False, "shuffle_buffer": 8, **data},
        "augment": {"name": "simclr", "preset": "cifar10", "blur_probability": 0.0},
        "encoder": {"name": "small_cnn", "widths": [8]},
        "head": {"name": "mlp", "output_dim": 8},
        "train": {"batch_size": 8, "epochs": 1, "steps_per_epoch": 2, "verbose": 0,
                  "input": mode},
        "eval": {"knn": {"enabled": False}, "linear": {"enabled": False}},
        "output": {"tensorboard": False, "plot": False, "save_encoder": False},
    }


def test_samples_group_members_and_read_labels(tmp_path):
    write_shards(tmp_path / "a", label="cls")
    write_shards(tmp_path / "b", count=20, label="json")
    write_shards(tmp_path / "c", count=12, label=None)
    plain = TarShards(str(tmp_path / "a" / "train-*.tar"), size=12, cache=False)
    assert plain.count() == 32
    data = plain.load()
    assert data.images.shape == (32, 12, 12, 3) and list(data.labels[:4]) == [0, 1, 0, 1]
    named = TarShards(str(tmp_path / "b"), size=12, cache=False).files()
    assert named.class_names == ("cat", "dog") and list(named.labels[:3]) == [1, 0, 1]
    assert len(named.shards) == 3 and named.name(9) == f"{tmp_path / 'b' / 'train-001.tar'}:00009.png"
    assert TarShards([str(tmp_path / "c")], size=12, cache=False).load().labels is None
    np.testing.assert_array_equal(plain.files().in_memory().images, data.images)
    picked = plain.files().take([9, 2])
    np.testing.assert_array_equal(picked.images, data.images[[9, 2]])
    assert list(picked.labels) == [1, 0]
    with pytest.raises(DataError, match="expected .tar shards"):
        TarShards(str(tmp_path / "none-*.tar")).count()


def test_the_index_is_cached(tmp_path):
    write_shards(tmp_path / "s", count=16)
    first = TarShards(str(tmp_path / "s"), size=12).files()
    second = TarShards(str(tmp_path / "s"), size=12).files()
    assert first.members == second.members and list(first.labels) == list(second.labels)


def test_an_epoch_reads_every_sample_once_in_an_order_from_seed_and_epoch(tmp_path):
    shards = TarShards(str(write_shards(tmp_path / "s")), size=12, shuffle_buffer=5,
                       cache=False).files()

    def first_pass(seed, epoch):
        stream = shards.stream(seed, epoch)
        return [next(stream)[0] for _ in range(len(shards))]

    order = first_pass(0, 0)
    assert sorted(order) == list(range(32)) and order != list(range(32))
    assert first_pass(0, 0) == order and first_pass(0, 1) != order


def test_a_resumed_stream_sees_the_batches_of_an_uninterrupted_one(tmp_path):
    shards = TarShards(str(write_shards(tmp_path / "s")), size=12, shuffle_buffer=6,
                       cache=False).files()

    def batches(first_epoch):
        stream = StreamInput(shards, batch_size=8, seed=3, steps_per_epoch=3, with_labels=True)
        return list(stream.dataset(first_epoch, 3).as_numpy_iterator())

    straight, resumed = batches(0), batches(2)
    assert len(straight) == 9 and len(resumed) == 3
    for (images, labels), (again, again_labels) in zip(straight[6:], resumed, strict=True):
        np.testing.assert_array_equal(images, again)
        np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(straight[0][0], straight[3][0])  # epochs differ


@pytest.mark.parametrize("mode", ["stream", "memory"])
def test_shards_train_end_to_end_and_are_evaluated(tmp_path, mode):
    root = write_shards(tmp_path / "s")
    write_shards(tmp_path / "t", count=12)
    data = spec({"path": str(root / "train-*.tar"), "test_path": str(tmp_path / "t")}, mode)
    data["eval"] = {"knn": {"k": 3}, "linear": {"epochs": 1}, "baselines": False}
    run = contrastive.train(data, out=tmp_path / "run", log=lambda line: None)
    assert run.results["epochs"] == 1 and np.isfinite(run.results["final_loss"])
    assert 0 <= run.results["eval"]["knn_accuracy"] <= 1
    assert "skipped_files" not in run.results


def test_an_unlabelled_file_list_streams_end_to_end(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    for i in range(16):
        (root / f"{i:02d}.png").write_bytes(png(i))
    (tmp_path / "list.txt").write_text("".join(f"images/{i:02d}.png\n" for i in range(16)))
    data = spec({}, "stream")
    data["data"] = {"name": "file_list", "path": str(tmp_path / "list.txt"), "size": 12,
                    "cache": False}
    run = contrastive.train(data, out=tmp_path / "run", log=lambda line: None)
    assert run.results["epochs"] == 1 and np.isfinite(run.results["final_loss"])


def test_a_corrupt_member_in_the_stream_is_skipped_counted_and_named(tmp_path):
    root = write_shards(tmp_path / "s", broken={13})
    with pytest.warns(UserWarning, match="train-001.tar:00013.png"):
        run = contrastive.train(spec({"path": str(root)}, "stream") | {
            "train": {**spec({}, "stream")["train"], "steps_per_epoch": 4}},
            out=tmp_path / "run", log=lambda line: None)
    assert run.results["skipped_files"] == 1
    assert "train-001.tar:00013.png" in (tmp_path / "run" / "skipped.txt").read_text()


def test_a_corrupt_member_is_reported_before_training_in_memory(tmp_path):
    root = write_shards(tmp_path / "s", broken={3})
    with pytest.warns(UserWarning, match="skipped 1 unreadable sample.*train-000.tar:00003.png"):
        data = TarShards(str(root), size=12, cache=False).load()
    assert len(data) == 31 and len(data.skipped) == 1


def test_batches_stay_full_when_a_streamed_file_turns_unreadable(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"{i:02d}.png")
    files = ImageFolder(str(root), size=8, cache=False).files()
    (root / "07.png").write_bytes(b"\x89PNG no longer an image")  # after the scan
    stream = StreamInput(files, batch_size=4, seed=0, steps_per_epoch=5)
    batches = [batch[0] for batch in stream.dataset(0, 2).as_numpy_iterator()]
    assert len(batches) == 10 and all(batch.shape == (4, 8, 8, 3) for batch in batches)
    assert len(stream.skipped) == 1 and "07.png" in stream.skipped[0]  # once, in two epochs


def test_a_folder_file_corrupt_after_the_scan_is_skipped_in_training(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(24):
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(
            root / f"{i:02d}.png")
    (root / "05.png").write_bytes(b"\x89PNG truncated")
    # As if the cached list of unreadable files predates the damage.
    monkeypatch.setattr(ImageFolder, "_unreadable", lambda self, items: [])
    data = spec({}, "stream")
    data["data"] = {"name": "image_folder", "path": str(root), "size": 12, "cache": False}
    data["train"]["steps_per_epoch"] = 3
    with pytest.warns(UserWarning, match="05.png"):
        run = contrastive.train(data, out=tmp_path / "run", log=lambda line: None)
    assert run.results["skipped_files"] == 1
    assert "05.png" in (tmp_path / "run" / "skipped.txt").read_text()
