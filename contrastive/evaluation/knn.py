"""Weighted k-nearest-neighbour classification on representations, computed
on the backend's device with `keras.ops`."""

import numpy as np
from keras import ops

from contrastive.evaluation.progress import Progress

# Classes ranked per test image: top-1 and top-5 accuracy.
RANKS = 5
# Test rows and memory-bank rows per similarity block: at most
# CHUNK x BANK_CHUNK float32 similarities (256 MiB) exist at once.
CHUNK = 1024
BANK_CHUNK = 65536


def describe(k, temperature):
    """The kNN protocol with these settings, as `contrastive explain` shows it."""
    return {
        "k": k,
        "temperature": temperature,
        "bank": "h of the training split (k capped at its size)",
        "similarity": "cosine",
        "vote": "exp(similarity / temperature) per neighbour, summed per class",
        "reported": ["top-1 accuracy", "top-5 accuracy"],
    }


def unit_rows(x):
    """`x` as a float32 tensor with rows scaled to unit L2 norm (rows of
    zeros stay zero)."""
    x = ops.convert_to_tensor(x, "float32")
    norms = ops.sqrt(ops.sum(ops.square(x), axis=1, keepdims=True))
    return x / ops.maximum(norms, 1e-12)


def nearest(queries, bank, k, bank_chunk=BANK_CHUNK):
    """The `k` most similar bank rows of each query, on the device.

    The bank is read `bank_chunk` rows at a time; each block's top `k` is
    merged into the running top `k`, so only `(len(queries), bank_chunk)`
    similarities exist at once.

    Args:
        queries: `(c, D)` unit rows (a tensor).
        bank: `(N, D)` unit rows (a tensor).
        k: neighbours; capped at N.
        bank_chunk: bank rows per block; None for the whole bank at once.

    Returns:
        `(similarities, indices)`, tensors of shape `(c, min(k, N))`, most
        similar first.
    """
    n = int(bank.shape[0])
    step = bank_chunk or n
    best = None
    for start in range(0, n, step):
        block = ops.matmul(queries, ops.transpose(bank[start:start + step]))
        sim, index = ops.top_k(block, min(k, int(block.shape[1])))
        index = ops.cast(index, "int32") + start
        if best is not None:
            sim = ops.concatenate([best[0], sim], axis=1)
            index = ops.concatenate([best[1], index], axis=1)
            sim, pick = ops.top_k(sim, min(k, int(sim.shape[1])))
            index = ops.take_along_axis(index, ops.cast(pick, "int32"), axis=1)
        best = (sim, index)
    return best


def ranked_classes(sim, index, bank_labels, num_classes, temperature, ranks=RANKS):
    """Weighted votes of the neighbours, ranked per row (Wu et al. 2018).

    Each neighbour votes for its class with `exp(similarity / temperature)`.
    Classes are ranked by the logarithm of their summed votes, computed as
    a log-sum-exp per class: the same ranking, without float32 overflow or
    underflow at any temperature.

    Returns:
        `(c, min(ranks, num_classes))` int32 tensor of classes, most votes
        first; -1 in place of classes no neighbour voted for, so that their
        (tied) order never decides a top-5 hit.
    """
    rows, k = int(sim.shape[0]), int(sim.shape[1])
    slots = ops.arange(rows, dtype="int32")[:, None] * num_classes + ops.take(bank_labels, index)
    slots = ops.reshape(slots, (-1,))
    size = rows * num_classes
    logits = ops.reshape(sim, (-1,)) / temperature
    peak = ops.segment_max(logits, slots, num_segments=size)
    total = ops.segment_sum(ops.exp(logits - ops.take(peak, slots)), slots, num_segments=size)
    counts = ops.segment_sum(ops.ones((rows * k,), "float32"), slots, num_segments=size)
    voted = ops.reshape(counts > 0, (rows, num_classes))
    scores = ops.where(voted, ops.reshape(peak + ops.log(total), (rows, num_classes)),
                       float("-inf"))
    _, classes = ops.top_k(scores, min(ranks, num_classes))
    classes = ops.cast(classes, "int32")
    return ops.where(ops.take_along_axis(voted, classes, axis=1), classes, -1)


def knn_classify(train_features, train_labels, test_features, k=200, temperature=0.1,
                 num_classes=None, chunk=CHUNK, bank_chunk=BANK_CHUNK, ranks=RANKS,
                 verbose=0):
    """Weighted kNN with cosine similarity on the backend's device.

    Args:
        train_features: `(N, D)` array, the memory bank.
        train_labels: `(N,)` int array.
        test_features: `(M, D)` array.
        k: neighbours; capped at N.
        temperature: vote temperature.
        num_classes: default from `train_labels`.
        chunk: test rows per block.
        bank_chunk: bank rows per block; None for the whole bank.
        ranks: classes returned per test row.
        verbose: 0, 1 or `"auto"`: a progress bar on stderr (see
            `contrastive.evaluation.progress`).

    Returns:
        `(M, min(ranks, num_classes))` int NumPy array: the classes by
        their votes, best first, -1 after the classes that got a vote.

    Raises:
        ValueError: `k`, `temperature`, `chunk` or `bank_chunk` is not
            positive.
    """
    _check_positive(k=k, temperature=temperature, chunk=chunk, bank_chunk=bank_chunk or 1)
    train_labels = np.asarray(train_labels).astype("int32")
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    bank = unit_rows(train_features)
    bank_labels = ops.convert_to_tensor(train_labels)
    test = np.asarray(test_features, dtype=np.float32)
    k = min(k, len(train_labels))
    progress = Progress("kNN", len(test), verbose, unit_name="image")
    ranked = []
    for start in range(0, len(test), chunk):
        sim, index = nearest(unit_rows(test[start:start + chunk]), bank, k, bank_chunk)
        classes = ranked_classes(sim, index, bank_labels, num_classes, temperature, ranks)
        ranked.append(ops.convert_to_numpy(classes))
        progress.add(len(ranked[-1]))
    return np.concatenate(ranked, axis=0)


def knn_accuracies(train_features, train_labels, test_features, test_labels, **options):
    """Top-1 and top-5 accuracy of weighted kNN (`knn_classify`, which takes
    `options`).

    A test image is a top-5 hit when its class is among the (at most) five
    classes with the most votes that received a vote at all.

    Returns:
        `{"top1": ..., "top5": ...}`, floats in [0, 1].
    """
    options.setdefault("ranks", RANKS)
    classes = knn_classify(train_features, train_labels, test_features, **options)
    labels = np.asarray(test_labels)[:, None]
    return {"top1": float(np.mean(classes[:, 0] == labels[:, 0])),
            "top5": float(np.mean((classes[:, :5] == labels).any(axis=1)))}


def knn_accuracy(train_features, train_labels, test_features, test_labels, k=200,
                 temperature=0.1, num_classes=None, chunk=CHUNK, bank_chunk=BANK_CHUNK,
                 verbose=0):
    """Top-1 accuracy of weighted kNN with cosine similarity.

    Each of the `k` nearest training samples votes for its class with weight
    `exp(similarity / temperature)` (Wu et al. 2018, as used by SimCLR
    code bases to monitor representations). Computed on the device; see
    `knn_classify` for the arguments.

    Example:

    ```python
    h_train, h_test = features_of(encoder, train), features_of(encoder, test)
    knn_accuracy(h_train, train.labels, h_test, test.labels, k=20)
    ```

    Returns:
        The accuracy as a float in [0, 1].
    """
    classes = knn_classify(train_features, train_labels, test_features, k, temperature,
                           num_classes, chunk, bank_chunk, ranks=1, verbose=verbose)
    return float(np.mean(classes[:, 0] == np.asarray(test_labels)))


def nearest_neighbors(train_features, test_features, k, chunk=CHUNK, bank_chunk=BANK_CHUNK):
    """The `k` training rows nearest (cosine) to each test row.

    Returns:
        `(similarities, indices)` as NumPy arrays of shape
        `(M, min(k, N))`, most similar first.
    """
    _check_positive(k=k, chunk=chunk, bank_chunk=bank_chunk or 1)
    bank = unit_rows(train_features)
    test = np.asarray(test_features, dtype=np.float32)
    sims, indices = [], []
    for start in range(0, len(test), chunk):
        sim, index = nearest(unit_rows(test[start:start + chunk]), bank, k, bank_chunk)
        sims.append(ops.convert_to_numpy(sim))
        indices.append(ops.convert_to_numpy(index))
    return np.concatenate(sims), np.concatenate(indices)


def _check_positive(**values):
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"expected {name} > 0, received {value!r}")
