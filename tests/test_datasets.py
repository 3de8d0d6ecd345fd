"""Datasets: image folders (and archives), arrays, the default digits."""

import io
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

from contrastive.errors import DataError
from contrastive.registry import build

from helpers import CIFAR_TEST, tiny_spec


def _jpeg(color, size=(12, 10)):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for name, color in (("cats", (255, 0, 0)), ("dogs", (0, 0, 255))):
        (root / name).mkdir(parents=True)
        for i in range(3):
            (root / name / f"{i}.jpg").write_bytes(_jpeg(color))
    Image.new("RGB", (8, 8), (0, 255, 0)).save(root / "dogs" / "green.png")
    return root


def test_image_folder_reads_classes_and_resizes(folder):
    data = build("datasets", {"name": "image_folder", "path": str(folder), "size": 16}).load()
    assert data.images.shape == (7, 16, 16, 3) and data.images.dtype == np.uint8
    assert data.class_names == ("cats", "dogs")
    assert list(data.labels) == [0, 0, 0, 1, 1, 1, 1]
    red = data.images[0].astype(int)
    assert red[..., 0].mean() > 200 and red[..., 2].mean() < 50


def test_sixteen_bit_grayscale_keeps_its_high_byte_as_the_streamed_input(tmp_path):
    # `convert("RGB")` clips 16-bit values to 255: the image came out near white.
    from contrastive.datasets.pil_decode import rgb

    values = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + 3
    root = tmp_path / "deep"
    (root / "a").mkdir(parents=True)
    Image.fromarray(values).save(root / "a" / "x.png")
    data = build("datasets", {"name": "image_folder", "path": str(root), "size": 8}).load()
    expected = np.repeat((values >> 8).astype(np.uint8)[..., None], 3, axis=-1)
    np.testing.assert_array_equal(data.images[0], expected)
    # Older Pillow opens a 16-bit PNG as mode "I" (32-bit).
    as_i = Image.fromarray(values.astype(np.int32))
    assert as_i.mode == "I"
    np.testing.assert_array_equal(np.asarray(rgb(as_i)), expected)
    pytest.importorskip("tensorflow")
    from contrastive.datasets.decode import decode_original

    np.testing.assert_array_equal(data.images[0], decode_original(str(root / "a" / "x.png")))


def test_unreadable_files_are_reported_by_path(folder):
    truncated = folder / "cats" / "truncated.jpg"
    truncated.write_bytes(_jpeg((1, 2, 3))[:60])
    text = folder / "dogs" / "notes.txt"
    text.write_text("not an image")
    with pytest.warns(UserWarning) as record:
        data = build("datasets", {"name": "image_folder", "path": str(folder), "size": 8}).load()
    message = str(record[0].message)
    assert "skipped 2 unreadable image(s)" in message
    assert str(truncated) in message and str(text) in message
    assert len(data) == 7
    strict = build("datasets", {"name": "image_folder", "path": str(folder), "on_error": "fail"})
    with pytest.raises(DataError) as info:
        strict.load()
    assert str(truncated) in str(info.value) and str(text) in str(info.value)


def test_image_folder_reads_a_tar_archive(folder, tmp_path):
    archive = tmp_path / "images.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="train")
    data = build("datasets", {"name": "image_folder", "path": str(archive), "size": 8,
                              "limit_per_class": 2}).load()
    assert data.class_names == ("cats", "dogs") and len(data) == 4


@pytest.mark.skipif(not CIFAR_TEST.exists(), reason="needs ../shared/datasets/cifar10")
def test_cifar10_archive_subset():
    data = build("datasets", {"name": "image_folder", "path": str(CIFAR_TEST),
                              "limit_per_class": 5}).load()
    assert data.images.shape == (50, 32, 32, 3)
    assert len(data.class_names) == 10 and np.bincount(data.labels).tolist() == [5] * 10


def test_arrays_npz_and_npy(tmp_path):
    images = np.random.default_rng(0).random((5, 6, 6))  # grey floats in [0, 1]
    np.savez(tmp_path / "a.npz", images=images, labels=np.arange(5))
    source = build("datasets", {"name": "arrays", "path": str(tmp_path / "a.npz")})
    data = source.load()
    assert data.images.shape == (5, 6, 6, 3) and data.images.dtype == np.uint8
    assert source.count() == 5 and source.shape() == data.image_shape  # from the headers
    assert np.array_equal(data.images[..., 0], np.round(images * 255).astype(np.uint8))
    assert data.labels.tolist() == [0, 1, 2, 3, 4]
    np.save(tmp_path / "b.npy", (images * 255).astype(np.uint8))
    assert build("datasets", {"name": "arrays", "path": str(tmp_path / "b.npy")}).load().labels is None


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"pictures": np.zeros((2, 4, 4, 3), np.uint8)}, "expected an array named 'images'"),
        ({"images": np.zeros((2, 4, 4, 2), np.uint8)}, "expected images of shape"),
        ({"images": np.full((2, 4, 4, 3), 7.0)}, "expected float images in [0, 1]"),
        ({"images": np.zeros((2, 4, 4, 3), np.uint8), "labels": np.zeros(3, int)}, "expected integer labels of shape (2,)"),
        ({"images": np.array([{"a": 1}], dtype=object)}, "cannot read"),
    ],
)
def test_arrays_problems_are_reported(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        build("datasets", {"name": "arrays", "path": str(path)}).load()
    assert message in str(info.value) and str(path) in str(info.value)


def test_digits_is_offline_split_and_stratified():
    digits = build("datasets", {"name": "digits", "size": 16})
    train, test = digits.load("train"), digits.load("test")
    assert train.images.shape[1:] == (16, 16, 3)
    assert len(train) + len(test) == 1797
    assert set(np.unique(test.labels)) == set(range(10))
    assert abs(len(test) / 1797 - 0.2) < 0.01


def test_decoded_images_are_cached(folder, monkeypatch):
    spec = {"name": "image_folder", "path": str(folder), "size": 8}
    first = build("datasets", spec).load()

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(Image, "open", no_decoding)
    second = build("datasets", spec).load()
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.labels, second.labels)
    assert first.class_names == second.class_names
    (folder / "cats" / "0.jpg").write_bytes(_jpeg((9, 9, 9)))  # a change invalidates
    with pytest.raises(DataError, match=r"none of the 7 images could be read \(the first: "), \
            warnings.catch_warnings():
        warnings.simplefilter("error")  # one line: no "skipped 7 unreadable" before it
        build("datasets", spec).load()


@pytest.mark.skipif(not CIFAR_TEST.exists(), reason="needs ../shared/datasets/cifar10")
def test_cifar10_from_a_local_copy():
    dataset = build("datasets", {"name": "cifar10", "path": str(CIFAR_TEST.parent),
                                 "limit_per_class": 3})
    test = dataset.load("test")
    assert test.images.shape == (30, 32, 32, 3)
    assert test.class_names == ("airplane", "automobile", "bird", "cat", "deer",
                                "dog", "frog", "horse", "ship", "truck")


def test_cifar10_local_copy_missing(tmp_path):
    with pytest.raises(DataError, match="expected cifar10-train.tar.gz or train.tar.gz or train"):
        build("datasets", {"name": "cifar10", "path": str(tmp_path)}).load("train")


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONTRASTIVE_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize("damage", [
    lambda entry: entry.write_bytes(entry.read_bytes()[:100]),  # truncated: BadZipFile
    lambda entry: entry.write_text("not an archive"),
    lambda entry: np.savez(entry, images=np.zeros(3, np.uint8), class_names=np.array(["a"])),
], ids=["truncated", "text", "shapes"])
def test_a_damaged_cache_entry_is_a_miss_said_once_and_rebuilt(folder, cache_folder, damage,
                                                               monkeypatch):
    spec = {"name": "image_folder", "path": str(folder), "size": 8}
    first = build("datasets", spec).load()
    (entry,) = cache_folder.glob("*.npz")
    damage(entry)
    with pytest.warns(UserWarning) as record:
        second = build("datasets", spec).load()
    assert len(record) == 1, [str(w.message) for w in record]
    assert str(record[0].message).startswith(f"{entry}: ignored a damaged cache entry (")
    assert np.array_equal(first.images, second.images)
    assert np.array_equal(first.labels, second.labels)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(Image, "open", no_decoding)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = build("datasets", spec).load()  # the entry was written again
    assert np.array_equal(first.images, third.images)
    assert sorted(p.name for p in cache_folder.iterdir()) == [entry.name]


def test_unlabelled_images_are_cached_too(cache_folder):
    from contrastive.datasets import cache

    cache.store("k", np.zeros((2, 4, 4, 3), np.uint8), None, ())
    images, labels, class_names, _ = cache.load("k")
    assert images.shape == (2, 4, 4, 3) and labels is None and class_names == ()


@pytest.mark.parametrize("text", ["7", "{oops", '{"a": 1}', '[["a"]]'])
def test_a_damaged_cached_list_is_a_miss_said_once(cache_folder, text):
    from contrastive.datasets import cache
    from contrastive.datasets.image_folder import _path_error_pairs

    cache_folder.mkdir()
    (cache_folder / "k.json").write_text(text)
    with pytest.warns(UserWarning) as record:
        assert cache.load_list("k", valid=_path_error_pairs) is None
    assert len(record) == 1
    assert str(record[0].message).startswith(f"{cache_folder / 'k.json'}: ignored a damaged")
    cache.store_list("k", [["a.jpg", "ValueError: bad"]])
    assert cache.load_list("k", valid=_path_error_pairs) == [["a.jpg", "ValueError: bad"]]


def _unlistable(monkeypatch, *folders):
    """Makes listing `folders` fail as it does without read permission."""
    import errno
    import pathlib

    real = pathlib.Path.iterdir

    def iterdir(self):
        if self in folders:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", iterdir)


@pytest.mark.parametrize("split, arg", [("train", "path"), ("test", "test_path")])
@pytest.mark.parametrize("where", ["top", "class"])
def test_a_folder_that_cannot_be_listed_is_named_with_its_key(folder, tmp_path, monkeypatch,
                                                              split, arg, where):
    import shutil

    test = tmp_path / "test"
    shutil.copytree(folder, test)
    root = folder if split == "train" else test
    unreadable = root if where == "top" else root / "dogs"
    _unlistable(monkeypatch, unreadable)
    dataset = build("datasets", {"name": "image_folder", "path": str(folder),
                                 "test_path": str(test), "size": 8})
    what = arg if where == "top" else f"a class folder of {arg}"
    for call in (dataset.load, dataset.count, dataset.files):
        with pytest.raises(DataError) as info:
            call(split)
        assert str(info.value) == (f"{unreadable}: expected a folder that can be read ({what}), "
                                   "received PermissionError: Permission denied")


def test_an_unreadable_class_folder_is_one_line_from_the_cli(folder, tmp_path, monkeypatch,
                                                            capsys):
    import os

    import yaml
    from contrastive_cli.main import main

    spec = tmp_path / "spec.yaml"
    data = {"name": "image_folder", "path": str(folder), "size": 8}
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "tiny.npz", data=data,
                                             train={"batch_size": 4, "epochs": 1})))
    unreadable = folder / "dogs"
    if os.geteuid() == 0:  # root reads any folder: made unreadable as permissions would
        _unlistable(monkeypatch, unreadable)
    unreadable.chmod(0)
    try:
        with pytest.raises(SystemExit) as info:
            main(["validate", str(spec)])
    finally:
        unreadable.chmod(0o755)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert (f"error: {spec}: data: {unreadable}: expected a folder that can be read (a class "
            "folder of path), received PermissionError: Permission denied") in err
