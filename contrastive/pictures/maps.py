"""A 2-D map of the held-out representations h, coloured by class."""

import numpy as np

from contrastive.errors import SpecError
from contrastive.pictures.figures import check_png_path, class_name, pyplot, save

METHODS = ("tsne", "umap")
# Inches per side of the map (800 pixels at figures.DPI).
SIDE = 8.0


def map_coordinates(features, method="tsne", seed=0, perplexity=30.0):
    """Two coordinates per row of `features`.

    `tsne`: scikit-learn's t-SNE (PCA initialisation, the perplexity capped
    below the number of rows). `umap`: UMAP from the `umap-learn` package
    (15 neighbours, capped likewise).

    Args:
        features: `(n, D)` array, n >= 3.
        method: `tsne` or `umap`.
        seed: the method's random state.
        perplexity: t-SNE's perplexity.

    Returns:
        `(n, 2)` float array.

    Raises:
        SpecError: an unknown method, `umap` without `umap-learn`, or fewer
            than 3 rows.
    """
    if method not in METHODS:
        raise SpecError(f"expected one of {', '.join(METHODS)}, received {method!r}", "--method")
    features = np.asarray(features, dtype=np.float32)
    if len(features) < 3:
        raise SpecError(f"expected at least 3 held-out images for a map, received "
                        f"{len(features)}", "--data")
    if method == "umap":
        return _umap().UMAP(n_components=2, n_neighbors=min(15, len(features) - 1),
                              random_state=seed).fit_transform(features)
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=min(perplexity, len(features) - 1.0), init="pca",
                random_state=seed).fit_transform(features)


def _umap():
    try:
        import umap
    except ImportError:
        raise SpecError("expected the umap-learn package for umap (pip install umap-learn), "
                        "received none installed", "--method") from None
    return umap


def map_figure(points, labels, class_names, title):
    """A scatter plot of `points`, one colour per class of `labels` (one
    colour when None), with a legend up to 20 classes; `SIDE` inches."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(SIDE, SIDE), layout="constrained")
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=8)
    else:
        classes = np.unique(labels)
        palette = "tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo"
        colours = plt.get_cmap(palette).resampled(len(classes))(np.arange(len(classes)))
        for colour, label in zip(colours, classes, strict=True):
            chosen = labels == label
            ax.scatter(points[chosen, 0], points[chosen, 1], s=8, color=colour,
                       label=class_name(label, class_names))
        if len(classes) <= 20:
            ax.legend(markerscale=2, fontsize="small")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def write_map(run, out, method="tsne", n=5000, seed=0, data=None, verbose=0):
    """Draws the held-out images' h of a finished run in 2-D (`method`),
    coloured by class, as a PNG.

    Args:
        run: a `Run`.
        out: the `.png` file.
        method: `tsne` or `umap` (see `map_coordinates`).
        n: at most this many images; a random sample fixed by `seed` when
            the split has more.
        seed: the sample's and the method's seed.
        data: a dataset mapping replacing the run's data (its test split).
        verbose: 0, 1 or `"auto"`: a progress bar on stderr.

    Returns:
        `{"indices": (m,), "points": (m, 2), "labels": (m,) or None}`.

    Raises:
        SpecError: a bad `out` or `method`, a run that is not finished, data
            without a held-out split or of another image shape.
    """
    from contrastive.evaluation.data import held_out_split
    from contrastive.evaluation.features import check_image_shape, features_of

    check_png_path(out)
    if method == "umap":
        _umap()
    encoder = run.encoder()
    with run.data_errors():
        test = held_out_split(run.spec, data)
        check_image_shape(encoder, test, "--data" if data is not None else "data")
    indices = np.arange(len(test))
    if len(test) > n:
        indices = np.sort(np.random.default_rng(seed).choice(len(test), size=n, replace=False))
        test = test.take(indices)
    h = features_of(encoder, test, verbose=verbose, title="h of the held-out split")
    points = map_coordinates(h, method, seed)
    name = {"tsne": "t-SNE", "umap": "UMAP"}[method]
    title = f"{name} of h: {len(points)} held-out images of {run.path.name}"
    save(map_figure(points, test.labels, test.class_names, title), out)
    return {"indices": indices, "points": points, "labels": test.labels}
