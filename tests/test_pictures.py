"""`contrastive neighbors` and `contrastive map`: pictures of a run's h."""

import os
import sys

import numpy as np
import pytest
from PIL import Image

from contrastive.datasets.base import Arrays
from contrastive.evaluation import features_of
from contrastive.pictures import maps, neighbors
from contrastive.pictures.neighbors import pick_queries
from contrastive.run import Run
from contrastive.spec import resolve
from contrastive.training import train
from contrastive_cli.main import main

from helpers import tiny_spec
from knn_reference import assert_no_near_ties


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=48).astype(np.int32)
    np.savez(root / "tiny.npz", images=images, labels=labels)
    np.savez(root / "tiny_test.npz", images=images[:12], labels=labels[:12])
    spec = tiny_spec(root / "tiny.npz", output={"tensorboard": False, "plot": False},
                     eval={"knn": {"enabled": False}, "linear": {"enabled": False}})
    train(resolve(spec), out=root / "run", log=lambda line: None)
    return root / "run"


def splits(run_dir):
    """The run's training and held-out images, read here from the files."""
    root = run_dir.parent
    return [Arrays(**dict(np.load(root / name))) for name in ("tiny.npz", "tiny_test.npz")]


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return a @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T


def test_neighbors_grid_shows_the_numpy_nearest_neighbours(capsys, run_dir, tmp_path,
                                                           monkeypatch):
    figures = []
    save = neighbors.save
    monkeypatch.setattr(neighbors, "save", lambda fig, path: (figures.append(fig), save(fig, path)))
    out = tmp_path / "grid.png"
    code, stdout, err = cli(capsys, "neighbors", "--run", str(run_dir), "--out", str(out),
                            "--n", "3", "--k", "4")
    assert code == 0, err
    assert "3 held-out images beside their 4 nearest" in stdout
    # 150-pixel cells: 3 rows, a query and 4 neighbours each.
    assert Image.open(out).size == (5 * 150, 3 * 150)
    train_split, test_split = splits(run_dir)
    encoder = Run(run_dir).encoder()
    sim = cosine(features_of(encoder, test_split.take(np.arange(3))),
                 features_of(encoder, train_split))
    assert_no_near_ties(sim, [], 4)
    expected = np.argsort(-sim, axis=1)[:, :4]
    axes = figures[0].axes
    assert len(axes) == 3 * 5
    for r in range(3):
        np.testing.assert_array_equal(axes[r * 5].images[0].get_array(), test_split.images[r])
        assert axes[r * 5].get_title() == f"query\n{test_split.labels[r]}"
        for c in range(4):
            i = expected[r, c]
            cell = axes[r * 5 + c + 1]
            np.testing.assert_array_equal(cell.images[0].get_array(), train_split.images[i])
            assert cell.get_title() == f"{sim[r, i]:.3f}\n{train_split.labels[i]}"


def test_random_queries_are_seeded():
    first = pick_queries(100, 8, "random", seed=1)
    assert np.array_equal(first, pick_queries(100, 8, "random", seed=1))
    assert not np.array_equal(first, pick_queries(100, 8, "random", seed=2))
    assert len(set(first)) == 8 and list(first) == sorted(first) and first.max() < 100
    assert pick_queries(5, 8).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("args, message", [
    (["neighbors", "--out", "{tmp}/grid.jpg"], "--out: expected a .png file"),
    (["neighbors", "--out", "{tmp}/no/grid.png"], "--out: expected an existing folder"),
    (["map", "--out", "{tmp}/map.png", "--data", "{{name: digits, size: 8}}"],
     "--data: expected images of shape (16, 16, 3)"),
    (["neighbors", "--out", "{tmp}/grid.png", "--data", "[1, 2]"],
     "--data: expected a YAML mapping"),
])
def test_bad_input_is_one_line(capsys, run_dir, tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, err = cli(capsys, *args, "--run", str(run_dir))
    assert code == 2 and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("command", ["map", "neighbors"])
def test_an_out_that_exists_or_cannot_be_written_is_refused_before_anything_is_read(
        capsys, tmp_path, command):
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    cases = [(taken, "expected a path that does not exist yet")]
    if os.path.isdir("/proc"):  # no file can be made there, even by root
        cases.append(("/proc/contrastive-test.png", "/proc is not writable"))
    for out, needle in cases:
        # No run there: the run is read (and h computed) only after --out is checked.
        code, _, err = cli(capsys, command, "--run", str(tmp_path / "no-run"), "--out", str(out))
        assert code == 2 and err.count("\n") == 1 and err.startswith("error: --out: "), err
        assert needle in err, err
    assert taken.read_bytes() == b"mine"


def test_map_is_tsne_of_the_held_out_h(capsys, run_dir, tmp_path):
    from sklearn.manifold import TSNE

    out = tmp_path / "map.png"
    code, stdout, err = cli(capsys, "map", "--run", str(run_dir), "--out", str(out))
    assert code == 0, err
    assert Image.open(out).size == (800, 800) and "tsne map of 12 held-out images" in stdout
    drawn = maps.write_map(Run(run_dir), out, seed=3)
    test_split = splits(run_dir)[1]
    h = features_of(Run(run_dir).encoder(), test_split)
    expected = TSNE(n_components=2, perplexity=11.0, init="pca", random_state=3).fit_transform(h)
    np.testing.assert_allclose(drawn["points"], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(drawn["labels"], test_split.labels)
    sample = maps.write_map(Run(run_dir), out, n=5, seed=3)
    assert sample["points"].shape == (5, 2) and len(set(sample["indices"])) == 5
    np.testing.assert_array_equal(sample["labels"], test_split.labels[sample["indices"]])


def test_umap_missing_is_one_line(capsys, run_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap raises ImportError
    code, _, err = cli(capsys, "map", "--run", str(run_dir), "--out", str(tmp_path / "m.png"),
                       "--method", "umap")
    assert code == 2 and err.count("\n") == 1
    assert "--method: expected the umap-learn package" in err


def test_map_needs_three_points():
    with pytest.raises(Exception, match="expected at least 3 held-out images"):
        maps.map_coordinates(np.ones((2, 4)))
