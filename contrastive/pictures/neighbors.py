"""Held-out images beside their nearest training images in h (cosine)."""

import numpy as np

from contrastive.errors import SpecError
from contrastive.pictures.figures import check_png_path, class_name, pyplot, save

# Inches per image cell of the grid (150 pixels at figures.DPI).
CELL = 1.5
SAMPLES = ("first", "random")


def pick_queries(count, n, sample="first", seed=0):
    """Indices of `n` (at most `count`) of `count` held-out images: the
    first ones, or a random sample fixed by `seed`, in ascending order.

    Raises:
        SpecError: `sample` is neither `first` nor `random`.
    """
    n = min(n, count)
    if sample == "first":
        return np.arange(n)
    if sample == "random":
        return np.sort(np.random.default_rng(seed).choice(count, size=n, replace=False))
    raise SpecError(f"expected one of {', '.join(SAMPLES)}, received {sample!r}", "--sample")


def neighbors_figure(queries, neighbours, query_titles, neighbour_titles):
    """A grid: per row a query image, then its neighbours, most similar
    first; `CELL` inches per cell.

    Args:
        queries: `(n, H, W, C)` uint8 images.
        neighbours: `(n, k, H, W, C)` uint8 images.
        query_titles: `n` strings.
        neighbour_titles: `(n, k)` strings.

    Returns:
        A matplotlib figure of `(k + 1) x n` cells.
    """
    plt = pyplot()
    rows, k = neighbours.shape[:2]
    fig, axes = plt.subplots(rows, k + 1, figsize=((k + 1) * CELL, rows * CELL),
                             squeeze=False, layout="constrained")
    for r in range(rows):
        _show(axes[r, 0], queries[r], query_titles[r], query=True)
        for c in range(k):
            _show(axes[r, c + 1], neighbours[r, c], neighbour_titles[r][c])
    return fig


def _show(ax, image, title, query=False):
    image = np.asarray(image)
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255)
    else:
        ax.imshow(image)
    ax.set_title(title, fontsize=8, fontweight="bold" if query else "normal")
    ax.set_xticks([])
    ax.set_yticks([])


def write_neighbors(run, out, n=8, k=5, sample="first", seed=0, data=None, verbose=0):
    """Draws `n` held-out images of a finished run beside their `k` nearest
    training images in h (cosine similarity, on the device), as a PNG.

    Titles give the similarity and, where the data has labels, the class.

    Args:
        run: a `Run`.
        out: the `.png` file.
        n: query images (rows).
        k: neighbours per query.
        sample: `first` (the first `n` held-out images) or `random`.
        seed: the random sample's seed.
        data: a dataset mapping replacing the run's data.
        verbose: 0, 1 or `"auto"`: progress bars on stderr.

    Returns:
        `{"queries": (n,), "neighbors": (n, k), "similarities": (n, k)}`:
        held-out and training indices, and the similarities.

    Raises:
        SpecError: see `run_splits`; a bad `out` or `sample`.
    """
    from contrastive.evaluation.data import run_splits
    from contrastive.evaluation.features import features_of
    from contrastive.evaluation.knn import nearest_neighbors

    check_png_path(out)
    encoder, train, test = run_splits(run, data, labelled=False)
    picked = pick_queries(len(test), n, sample, seed)
    queries = test.take(picked).in_memory()
    train_h = features_of(encoder, train, verbose=verbose, title="h of the training split")
    query_h = features_of(encoder, queries, verbose=verbose, title="h of the query images")
    sims, indices = nearest_neighbors(train_h, query_h, k)
    found = train.take(indices.reshape(-1)).in_memory()
    found_images = found.views()
    images = found_images.reshape(indices.shape + found_images.shape[1:])
    names = train.class_names or test.class_names
    titles = [[f"{s:.3f}" + _label(found.labels, r * indices.shape[1] + c, names)
               for c, s in enumerate(row)] for r, row in enumerate(sims)]
    query_titles = ["query" + _label(queries.labels, r, names) for r in range(len(picked))]
    save(neighbors_figure(queries.views(), images, query_titles, titles), out)
    return {"queries": picked, "neighbors": indices, "similarities": sims}


def _label(labels, i, names):
    return "" if labels is None else "\n" + class_name(labels[i], names)
