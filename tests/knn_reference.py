"""A NumPy reference of weighted kNN (Wu et al. 2018), for the tests of the
device kNN and of what uses it."""

import numpy as np


def numpy_knn(train, train_labels, test, k, temperature, ranks=5, num_classes=None):
    """The reference: float64, the whole similarity matrix, one test row at a
    time, votes exp(similarity / temperature) as Wu et al. write them;
    `num_classes` defaults to the largest training label + 1.

    Returns:
        `(ranked, similarities, votes)`: the classes by votes, best first,
        -1 past the voted ones; the `(M, N)` similarities; each row's votes
        as a dict.
    """
    train, test = np.asarray(train, np.float64), np.asarray(test, np.float64)
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    sim = test @ train.T
    k = min(k, len(train))
    if num_classes is None:
        num_classes = int(np.max(train_labels)) + 1
    ranked = np.full((len(test), min(ranks, num_classes)), -1)
    all_votes = []
    for row in range(len(test)):
        votes = {}
        for i in np.argsort(-sim[row])[:k]:
            label = train_labels[i]
            votes[label] = votes.get(label, 0.0) + np.exp(sim[row, i] / temperature)
        best = sorted(votes, key=lambda c: -votes[c])[:ranks]
        ranked[row, :len(best)] = best
        all_votes.append(votes)
    return ranked, sim, all_votes


def assert_no_near_ties(sim, votes, k):
    """The data's own guard: the k-th and (k+1)-th similarities, and the
    votes of the classes, are far apart compared with float32 rounding, so
    that both computations must pick the same neighbours and classes."""
    ordered = -np.sort(-sim, axis=1)
    if k < sim.shape[1]:
        assert (ordered[:, k - 1] - ordered[:, k]).min() > 1e-5
    for row in votes:
        values = np.sort(np.array(list(row.values())))[::-1]
        assert (values[:-1] / values[1:] - 1).min(initial=1.0) > 1e-4
