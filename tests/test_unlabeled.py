"""Self-supervised data without labels: an image folder with no class
folders trains, evaluation says why it is skipped (or uses `eval.data`),
and unreadable files are skipped, counted and named in the run directory."""

import numpy as np
import pytest
from PIL import Image

import contrastive
from contrastive.datasets.image_folder import ImageFolder
from contrastive.errors import DataError


@pytest.fixture
def flat_folder(tmp_path):
    """40 images of 16x16 straight in one folder, and one broken file."""
    rng = np.random.default_rng(0)
    root = tmp_path / "flat"
    root.mkdir()
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            root / f"{i:03d}.png")
    (root / "020-broken.png").write_bytes(b"\x89PNG not really")
    return root


def spec(root, mode, **extra):
    return {
        "data": {"name": "image_folder", "path": str(root), "size": 16, "cache": False},
        "augment": {"name": "simclr", "preset": "cifar10"},
        "encoder": {"name": "small_cnn", "widths": [8]},
        "head": {"name": "mlp", "output_dim": 8},
        "train": {"batch_size": 8, "epochs": 1, "steps_per_epoch": 2, "verbose": 0,
                  "input": mode},
        "output": {"tensorboard": False, "plot": False},
        **extra,
    }


def test_a_folder_without_class_folders_is_unlabelled(flat_folder):
    with pytest.warns(UserWarning, match="020-broken.png"):
        data = ImageFolder(str(flat_folder), size=16, cache=False).load()
    assert data.labels is None and len(data) == 40 and data.class_names == ()
    folder = ImageFolder(str(flat_folder), size=16)
    assert folder.count() == 41 and folder.shape() == folder.load().image_shape == (16, 16, 3)
    with pytest.raises(DataError, match="in a class folder"):
        with pytest.warns(UserWarning):
            ImageFolder(str(flat_folder), size=16, labels="folders", cache=False).load()


@pytest.mark.parametrize("mode", ["memory", "device", "stream"])
def test_an_unlabelled_folder_trains_and_names_what_it_skipped(flat_folder, tmp_path, mode):
    if mode == "stream":
        pytest.importorskip("tensorflow")
    lines = []
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        run = contrastive.train(spec(flat_folder, mode), out=tmp_path / "run", log=lines.append)
    assert run.results["epochs"] == 1 and run.results["eval"] == {}
    assert any("evaluation skipped" in line for line in lines)
    assert run.results["skipped_files"] == 1
    assert "020-broken.png" in (tmp_path / "run" / "skipped.txt").read_text()


def test_an_unlabelled_folder_is_evaluated_on_eval_data(flat_folder, tmp_path, tiny_arrays):
    # With unlabelled training data, eval.data gives both labelled splits.
    data = spec(flat_folder, "memory", eval={
        "data": {"name": "arrays", "path": str(tiny_arrays),
                 "test_path": str(tiny_arrays.parent / "tiny_test.npz")},
        "knn": {"k": 3}, "linear": {"epochs": 2}})
    with pytest.warns(UserWarning):
        run = contrastive.train(data, out=tmp_path / "run", log=lambda line: None)
    assert 0.0 <= run.results["eval"]["knn_accuracy"] <= 1.0
    report = contrastive.evaluate(run, "knn", k=3)
    assert (report["train"], report["test"]) == (48, 12)


def test_a_file_list_trains_labelled_or_not(flat_folder, tmp_path):
    from contrastive.datasets.file_list import FileList

    names = sorted(p.name for p in flat_folder.iterdir() if p.name != "020-broken.png")
    (tmp_path / "list.txt").write_text("# the training images\n" + "".join(
        f"flat/{name}\n" for name in names) + "\n")
    (tmp_path / "list.csv").write_text("path,label\n" + "".join(
        f"{flat_folder / name},{'cat' if i % 2 else 'dog'}\n" for i, name in enumerate(names)))
    plain = FileList(str(tmp_path / "list.txt"), size=16, cache=False).load()
    labelled = FileList(str(tmp_path / "list.csv"), size=16, cache=False)
    assert plain.labels is None and len(plain) == 40 and labelled.count() == 40
    data = labelled.load()
    assert data.class_names == ("cat", "dog") and list(data.labels[:4]) == [1, 0, 1, 0]
    np.testing.assert_array_equal(data.images, plain.images)
    streamed = labelled.files()
    assert list(streamed.labels) == list(data.labels)
    run = contrastive.train({**spec(flat_folder, "memory"),
                             "data": {"name": "file_list", "path": str(tmp_path / "list.txt"),
                                      "size": 16, "cache": False}},
                            out=tmp_path / "run", log=lambda line: None)
    assert run.results["epochs"] == 1


def test_bad_file_lists_are_one_line(tmp_path):
    from contrastive.datasets.file_list import FileList

    cases = {"a.csv": ("file,label\nx.png,1\n", "a 'path' column"),
             "b.csv": ("path,label\nx.png,1\ny.png,\n", "on every row or on none"),
             "c.txt": ("# nothing\n\n", "names no image"),
             "d.txt": ("notes.doc\n", "expected .jpg"),
             "e.txt": ("here.png\ngone.png\n",
                       r"1 of the 2 files it names do not exist \(the first: .*gone\.png\)")}
    (tmp_path / "here.png").write_bytes(b"")
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=message):
            FileList(str(tmp_path / name)).count()
    with pytest.raises(DataError, match="no such list file"):
        FileList(str(tmp_path / "missing.txt")).count()
