"""kNN on the device (`keras.ops`) against a NumPy reference, on each backend."""

import types

import keras
import numpy as np
import pytest

from contrastive.datasets.base import Arrays
from contrastive.evaluation.knn import (
    knn_accuracies,
    knn_accuracy,
    knn_classify,
    nearest_neighbors,
)
from contrastive.evaluation.monitor import KnnMonitor

from knn_reference import assert_no_near_ties, numpy_knn

CLASSES = 12


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(7)
    train = rng.normal(size=(200, 16)).astype(np.float32)
    test = rng.normal(size=(60, 16)).astype(np.float32)
    return (train, rng.integers(0, CLASSES, 200).astype(np.int32),
            test, rng.integers(0, CLASSES, 60).astype(np.int32))


@pytest.mark.parametrize("k, temperature, chunk, bank_chunk", [
    (20, 0.1, 1024, None),    # one block
    (20, 0.1, 7, 33),         # uneven blocks of test rows and of the bank
    (1, 0.1, 16, None),       # one neighbour: one voted class, then -1
    (500, 0.005, 25, 64),     # k above the bank's 200; exp(+-0.7 / 0.005) is out of
                              # float32's range (both ways)
])
def test_device_knn_ranks_the_classes_as_numpy(features, k, temperature, chunk, bank_chunk):
    train, train_labels, test, test_labels = features
    expected, sim, votes = numpy_knn(train, train_labels, test, k, temperature,
                                     num_classes=CLASSES)
    assert_no_near_ties(sim, votes, k)
    ranked = knn_classify(train, train_labels, test, k=k, temperature=temperature,
                          num_classes=CLASSES, chunk=chunk, bank_chunk=bank_chunk)
    np.testing.assert_array_equal(ranked, expected)
    top1 = np.mean(expected[:, 0] == test_labels)
    top5 = np.mean((expected == test_labels[:, None]).any(axis=1))
    assert knn_accuracies(train, train_labels, test, test_labels, k=k, temperature=temperature,
                          chunk=chunk, bank_chunk=bank_chunk) == {"top1": top1, "top5": top5}
    assert knn_accuracy(train, train_labels, test, test_labels, k=k,
                        temperature=temperature, chunk=chunk, bank_chunk=bank_chunk) == top1


def test_top5_differs_from_top1_on_this_data(features):
    train, train_labels, test, test_labels = features
    result = knn_accuracies(train, train_labels, test, test_labels, k=20)
    assert result["top5"] > result["top1"] + 0.1


def test_chunks_bound_the_similarity_blocks(features, monkeypatch):
    train, train_labels, test, _ = features
    shapes = []
    matmul = keras.ops.matmul

    def recording(a, b):
        shapes.append((int(a.shape[0]), int(b.shape[1])))
        return matmul(a, b)

    monkeypatch.setattr(keras.ops, "matmul", recording)
    knn_classify(train, train_labels, test, k=10, chunk=16, bank_chunk=48)
    assert max(shapes) == (16, 48) and len(shapes) == 4 * 5
    shapes.clear()
    knn_classify(train, train_labels, test, k=10, chunk=16, bank_chunk=None)
    assert set(shapes) == {(16, 200), (12, 200)}


def test_nearest_neighbors_match_numpy(features):
    train, _, test, _ = features
    sims, indices = nearest_neighbors(train, test, 6, chunk=9, bank_chunk=50)
    _, sim, _ = numpy_knn(train, np.zeros(200, int), test, 6, 0.1)
    assert_no_near_ties(sim, [], 6)
    np.testing.assert_array_equal(indices, np.argsort(-sim, axis=1)[:, :6])
    np.testing.assert_allclose(sims, np.take_along_axis(sim, indices, axis=1), atol=1e-5)


def test_bad_settings_are_refused(features):
    train, train_labels, test, _ = features
    with pytest.raises(ValueError, match="expected k > 0, received 0"):
        knn_classify(train, train_labels, test, k=0)
    with pytest.raises(ValueError, match="expected temperature > 0"):
        knn_classify(train, train_labels, test, temperature=0.0)


def test_the_monitor_logs_top1_and_top5(features):
    _, train_labels, _, test_labels = features
    images = np.random.default_rng(3).integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    # Fixed weights (not the global seed's, which depend on the tests run
    # before): with these the data keep clear of near ties on every backend.
    kernel = np.random.default_rng(1).normal(0, 0.5, (16, 5))
    encoder = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                                keras.layers.Dense(5, kernel_initializer=keras.initializers.Constant(
                                    kernel))])
    monitor = KnnMonitor(Arrays(images[:30], train_labels[:30]),
                         Arrays(images[30:], test_labels[:10]), every=2, k=4)
    monitor.set_model(types.SimpleNamespace(encoder=encoder))
    logs = {}
    monitor.on_epoch_end(0, logs)
    assert logs == {}
    monitor.on_epoch_end(1, logs)
    h = keras.ops.convert_to_numpy(encoder(images.astype("float32") / 255.0))
    expected, sim, votes = numpy_knn(h[:30], train_labels[:30], h[30:], 4, 0.1)
    assert_no_near_ties(sim, votes, 4)
    assert logs["knn_accuracy"] == np.mean(expected[:, 0] == test_labels[:10])
    assert logs["knn_top5_accuracy"] == np.mean((expected == test_labels[:10, None]).any(1))
