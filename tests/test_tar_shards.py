"""WebDataset-style tar shards (`tar_shards`), and images that become
unreadable while training streams them: skipped, counted and named."""

import io
import json
import re
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

import contrastive
from contrastive.datasets.aspect import stored_shape
from contrastive.datasets.image_folder import ImageFolder
from contrastive.datasets.tar_shards import TarShards
from contrastive.errors import DataError, SpecError
from contrastive.training.inputs import StreamInput
from tests.test_aspect_crops import (
    SIZE,
    assert_close,
    augmenter,
    fraction_boxes,
    model_views,
    reference,
    smooth_image,
)

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
    assert len(named.shards) == 3
    assert named.name(9) == f"{tmp_path / 'b' / 'train-001.tar'}:00009.png"
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


# Shards of images kept at their aspect ratio (`keep_aspect`): PIL (width,
# height) of the members, alternately landscape 4:3 and portrait 1:3.
ASPECTS = ((40, 30), (20, 60))


def aspect_png(i, shapes=ASPECTS, smooth=False):
    width, height = shapes[i % len(shapes)]
    if smooth:
        image = smooth_image(width, height, i)
    else:
        rng = np.random.default_rng(i)
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def write_aspect_shards(folder, count=16, per_shard=6, shapes=ASPECTS, smooth=False):
    folder.mkdir(parents=True, exist_ok=True)
    for shard in range(-(-count // per_shard)):
        with tarfile.open(folder / f"train-{shard:03d}.tar", "w") as tar:
            for i in range(shard * per_shard, min(count, (shard + 1) * per_shard)):
                add(tar, f"{i:05d}.png", aspect_png(i, shapes, smooth))
                add(tar, f"{i:05d}.cls", str(i % 2).encode())
    return folder


def test_aspect_kept_shards_store_each_image_at_its_aspect(tmp_path):
    root = write_aspect_shards(tmp_path / "s")
    data = TarShards(str(root), size=12, keep_aspect=True, stored_side=24, cache=False).load()
    expected = [list(stored_shape(h, w, 24)) for w, h in (ASPECTS[i % 2] for i in range(16))]
    assert data.sizes.tolist() == expected and data.view_size == 12
    assert expected[:2] == [[24, 32], [72, 24]]  # 40x30 and 20x60, shorter side 24
    for image, (height, width) in zip(data.images, data.sizes):
        assert not image[height:].any() and not image[:, width:].any()  # zero padding
    assert data.image_shape == (12, 12, 3) and data.views().shape == (16, 12, 12, 3)
    # Streamed shards: the same stored images, and the same evaluation views.
    shards = TarShards(str(root), size=12, keep_aspect=True, stored_side=24,
                       cache=False).files()
    assert shards.stored_side == 24 and StreamInput(shards, 4, seed=0,
                                                    augmenter=augmenter()).crops
    again = shards.in_memory()
    np.testing.assert_array_equal(again.sizes, data.sizes)
    np.testing.assert_array_equal(again.images, data.images)
    views = np.concatenate(list(shards.batches(5)))
    assert views.shape == (16, 12, 12, 3)
    assert np.abs(views.astype(float) - data.views()).max() <= 1
    picked = shards.take([3, 0])
    np.testing.assert_array_equal(picked.sizes, data.sizes[[3, 0]])
    # The default stored side is size / 0.875; the default squashes.
    assert TarShards(str(root), size=14, keep_aspect=True, cache=False).stored_side == 16
    plain = TarShards(str(root), size=12, cache=False)
    assert plain.files().stored_side is None and plain.load().images.shape == (16, 12, 12, 3)
    with pytest.raises(ValueError, match="expected keep_aspect: true"):
        TarShards(str(root), size=12, stored_side=24)


def test_aspect_kept_shards_are_cached_with_their_sizes(tmp_path):
    root = write_aspect_shards(tmp_path / "s", count=6)
    fresh = TarShards(str(root), size=12, keep_aspect=True, stored_side=24).load()
    cached = TarShards(str(root), size=12, keep_aspect=True, stored_side=24).load()
    assert np.array_equal(cached.sizes, fresh.sizes) and cached.view_size == 12
    assert np.array_equal(cached.images, fresh.images)
    other = TarShards(str(root), size=12, keep_aspect=True, stored_side=20).load()
    assert other.sizes.min() == 20
    squashed = TarShards(str(root), size=12).load()
    again = TarShards(str(root), size=12).load()
    assert squashed.sizes is None and again.sizes is None
    assert squashed.images.shape == again.images.shape == (6, 12, 12, 3)


@pytest.mark.parametrize("mode", ["memory", "device", "stream"])
def test_aspect_kept_shards_train_and_are_evaluated(tmp_path, mode):
    root = write_aspect_shards(tmp_path / "s")
    write_aspect_shards(tmp_path / "t", count=8)
    data = spec({"path": str(root), "test_path": str(tmp_path / "t"), "keep_aspect": True},
                mode)
    data["augment"]["size"] = 12
    data["eval"] = {"knn": {"k": 3}, "linear": {"enabled": False}, "baselines": False}
    run = contrastive.train(data, out=tmp_path / "run", log=lambda line: None)
    assert run.results["epochs"] == 1 and np.isfinite(run.results["final_loss"])
    assert 0 <= run.results["eval"]["knn_accuracy"] <= 1


def test_streamed_shard_crops_crop_the_original_member(tmp_path, monkeypatch):
    # Originals large enough for `test_aspect_crops`' tolerance.
    shapes = ((200, 150), (100, 300))
    root = write_aspect_shards(tmp_path / "s", count=4, per_shard=3, shapes=shapes,
                               smooth=True)
    shards = TarShards(str(root), size=SIZE, keep_aspect=True, cache=False).files()
    monkeypatch.setattr(StreamInput, "boxes", lambda self, epoch, index, height, width:
                        np.repeat(fraction_boxes([height], [width]), 2, axis=0))
    source = StreamInput(shards, 4, seed=0, augmenter=augmenter())
    stream = shards.stream(0, 0)
    order = [next(stream)[0] for _ in range(4)]
    (x,) = next(iter(source.dataset(0, 1)))
    x = {key: value.numpy() for key, value in x.items()}
    assert x["views"].shape == (4, 2, SIZE, SIZE, 3)
    views = model_views(x)
    for row, index in enumerate(order):
        original = Image.open(io.BytesIO(aspect_png(index, shapes, smooth=True))).convert("RGB")
        expected = reference(original, fraction_boxes([original.height], [original.width])[0])
        for view in views:
            assert_close(view[row], expected, f"stream, shard sample {index}")


@pytest.mark.parametrize("label, needle", [
    ("-1", "expected labels >= 0, received -1"),
    ("300000000", "expected labels below 100000 (class indices), received 300000000"),
    ("1000000000000", "expected labels below 100000 (class indices), received 1000000000000"),
])
def test_labels_that_are_no_class_index_are_refused(tmp_path, label, needle):
    from contrastive.datasets.tar_shards import TarShards
    from contrastive.errors import DataError

    folder = tmp_path / "s"
    folder.mkdir()
    with tarfile.open(folder / "train-000.tar", "w") as tar:
        for i in range(4):
            add(tar, f"{i:05d}.png", png(i))
            add(tar, f"{i:05d}.cls", (label if i == 2 else "1").encode())
    with pytest.raises(DataError, match=re.escape(needle)):
        TarShards(str(folder), size=12, cache=False).files()


def cut(shard, where):
    """Truncates `shard` (of `write_shards`' pairs `NNNNN.png`, `NNNNN.cls`):
    inside the header of its third image, inside that image's data, or just
    before its end-of-archive marker."""
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    last = members[-1]
    at = {"header": members[4].offset + 100, "data": members[4].offset_data + 10,
          "end": last.offset_data + -(-last.size // 512) * 512}[where]
    shard.write_bytes(shard.read_bytes()[:at])


@pytest.mark.parametrize("where, kept", [("header", 10), ("data", 10)])
def test_a_truncated_shard_is_reported_not_read_as_a_shorter_one(tmp_path, where, kept):
    root = write_shards(tmp_path / "s", count=16)
    cut(root / "train-001.tar", where)
    shard = f"{root / 'train-001.tar'} (truncated "
    with pytest.warns(UserWarning, match=re.escape(f"damaged shard(s): {shard}")):
        data = TarShards(str(root), size=12, cache=False).load()
    assert len(data) == kept and [line[:len(shard)] for line in data.skipped] == [shard]
    assert "received the end of the file" in data.skipped[0]
    with pytest.raises(DataError, match=re.escape(shard) + ".*expected"):
        TarShards(str(root), size=12, cache=False, on_error="fail").files()


def test_a_shard_without_its_end_of_archive_marker_reads_whole(tmp_path):
    # as tar and `tarfile` read one: every member is there
    root = write_shards(tmp_path / "s", count=16)
    cut(root / "train-001.tar", "end")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = TarShards(str(root), size=12, cache=False).load()
    assert len(data) == 16 and not data.skipped


def test_a_gzip_shard_cut_short_is_truncated(tmp_path):
    import gzip

    root = write_shards(tmp_path / "s", count=16)
    for name in ("train-000.tar", "train-001.tar"):
        (root / f"{name}.gz").write_bytes(gzip.compress((root / name).read_bytes()))
    whole = (root / "train-001.tar.gz").read_bytes()
    (root / "train-001.tar.gz").write_bytes(whole[:-4])  # only the gzip trailer's end
    with pytest.warns(UserWarning, match=r"train-001\.tar\.gz \(truncated after the "
                                         "end-of-archive marker: expected the end of the "
                                         "compressed stream"):
        shards = TarShards(str(root / "*.tar.gz"), size=12, cache=False).files()
    assert len(shards) == 16 and len(shards.skipped) == 1
    (root / "train-001.tar.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.warns(UserWarning, match=r"train-001\.tar\.gz \(truncated in 000"):
        assert 8 <= len(TarShards(str(root / "*.tar.gz"), size=12, cache=False).files()) < 16


def test_a_shard_truncated_after_indexing_is_named_once_when_streamed(tmp_path):
    root = write_shards(tmp_path / "s", count=16)
    shards = TarShards(str(root), size=12, cache=False).files()
    cut(root / "train-000.tar", "header")
    with pytest.warns(UserWarning, match=r"train-000\.tar \(truncated after 00001\.cls"):
        first = [index for index, _ in shards.samples(0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = [index for index, _ in shards.samples(0)]
    assert first == again == [0, 1] and len(shards.skipped) == 1


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_a_truncated_shard_is_skipped_in_training_or_refused_before_it(tmp_path, mode):
    root = write_shards(tmp_path / "s", count=24)
    cut(root / "train-002.tar", "data")
    with pytest.raises(SpecError, match=r"^data: 1 damaged shard\(s\): .*train-002\.tar "
                                        r"\(truncated in 00018\.png: expected its \d+ bytes, "
                                        "received the end of the file"):
        contrastive.train(spec({"path": str(root), "on_error": "fail"}, mode),
                          out=tmp_path / "refused", log=lambda line: None)
    assert not (tmp_path / "refused").exists()
    with pytest.warns(UserWarning, match=r"train-002\.tar \(truncated"):
        run = contrastive.train(spec({"path": str(root)}, mode), out=tmp_path / "run",
                                log=lambda line: None)
    assert run.results["skipped_files"] == 1
    assert "train-002.tar (truncated in 00018.png" in (tmp_path / "run" / "skipped.txt").read_text()


def write_labelled(folder, labels, suffix="cls"):
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / "train-000.tar", "w") as tar:
        for i, label in enumerate(labels):
            add(tar, f"{i:05d}.png", png(i))
            add(tar, f"{i:05d}.{suffix}", label.encode())
    return folder


@pytest.mark.parametrize("labels, needle", [
    (["0", "1", "oops", "1"], ("00002.cls: expected an integer label, as 3 other sample(s) "
                               "have (a split's labels are all integers or all class names), "
                               "received 'oops'")),
    (["cat", "7", "dog", "cat"], ("00001.cls: expected a class name as label, as 3 other "
                                  "sample(s) have")),
])
def test_a_split_of_integer_labels_and_class_names_is_refused(tmp_path, labels, needle):
    root = write_labelled(tmp_path / "s", labels)
    for on_error in ("skip", "fail"):
        with pytest.raises(DataError, match=re.escape(f"train-000.tar:{needle}")):
            TarShards(str(root), size=12, cache=False, on_error=on_error).files()


def test_a_json_label_that_is_no_json_is_an_unreadable_sample(tmp_path):
    root = write_labelled(tmp_path / "s", ["0", "1", "{bad json", "1"], suffix="json")
    needle = "train-000.tar:00002.json (expected a JSON label, received '{bad json')"
    with pytest.warns(UserWarning, match=re.escape("skipped 1 unreadable sample(s): ")):
        shards = TarShards(str(root), size=12, cache=False).files()
    assert list(shards.labels) == [0, 1, 1] and shards.class_names == ()
    assert shards.skipped[0].endswith(needle)
    with pytest.raises(DataError, match=re.escape(needle)):
        TarShards(str(root), size=12, cache=False, on_error="fail").files()


def test_held_out_labels_of_another_kind_or_class_are_refused_before_training(tmp_path):
    named = write_labelled(tmp_path / "named", ["cat", "dog"] * 5)
    numbered = write_labelled(tmp_path / "numbered", ["0", "1"] * 5)
    other = write_labelled(tmp_path / "other", ["cat", "cow"] * 5)
    for train, test, needle in [
        (named, numbered, ("00000.cls: expected a class name as label, as the training "
                           "shards have (cat, dog), received '0'")),
        (numbered, named, ("00000.cls: expected an integer label, as the training shards "
                           "have, received 'cat'")),
        (named, other, ("expected held-out classes among the training split's (cat, dog), "
                        "received cow")),
    ]:
        with pytest.raises(SpecError, match=re.escape(needle)):
            contrastive.train(spec({"path": str(train), "test_path": str(test)}, "memory"),
                              out=tmp_path / "run", log=lambda line: None)
        assert not (tmp_path / "run").exists()
