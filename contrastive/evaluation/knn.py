"""Weighted k-nearest-neighbour classification on representations."""

import numpy as np


def knn_accuracy(train_features, train_labels, test_features, test_labels, k=200,
                 temperature=0.1, num_classes=None, chunk=1024):
    """Top-1 accuracy of weighted kNN with cosine similarity.

    Each of the `k` nearest training samples votes for its class with weight
    `exp(similarity / temperature)` (Wu et al. 2018, as used by SimCLR
    code bases to monitor representations).

    Args:
        train_features: `(N, D)` array.
        train_labels: `(N,)` int array.
        test_features: `(M, D)` array.
        test_labels: `(M,)` int array.
        k: neighbours; capped at N.
        temperature: vote temperature.
        num_classes: number of classes; default from the labels.
        chunk: test rows per similarity block, to bound memory.

    Returns:
        The accuracy as a float in [0, 1].
    """
    train = _normalize(np.asarray(train_features, dtype=np.float32))
    test = _normalize(np.asarray(test_features, dtype=np.float32))
    train_labels = np.asarray(train_labels)
    test_labels = np.asarray(test_labels)
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, len(train))
    correct = 0
    for start in range(0, len(test), chunk):
        sim = test[start:start + chunk] @ train.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        top_sim = np.take_along_axis(sim, top, axis=1)
        weights = np.exp(top_sim / temperature)
        votes = np.zeros((len(sim), num_classes))
        np.add.at(votes, (np.arange(len(sim))[:, None], train_labels[top]), weights)
        correct += int((votes.argmax(axis=1) == test_labels[start:start + chunk]).sum())
    return correct / len(test)


def _normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
