"""Datasets: image folders (and archives), arrays, the default digits."""

import io
import tarfile
import warnings

import numpy as np
import pytest
from PIL import Image

from contrastive.errors import DataError
from contrastive.registry import build

from helpers import CIFAR_TEST


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
