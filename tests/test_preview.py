"""`contrastive preview`: a grid of originals and their two views."""

import numpy as np
from click.testing import CliRunner
from PIL import Image


def test_preview_writes_grid(tmp_path, write_spec):
    from contrastive_cli.main import app

    spec = write_spec({
        "seed": 3,
        "data": {"name": "digits", "size": 16},
        "encoder": {"name": "small_cnn"},
        "augment": {"name": "simclr", "preset": "cifar10"},
    })
    out = tmp_path / "views.png"
    result = CliRunner().invoke(app, ["preview", str(spec), "--out", str(out), "--n", "3"])
    assert result.exit_code == 0, result.output
    grid = np.asarray(Image.open(out))
    # 16-pixel images are shown 4x: 3 rows and 3 columns of 64-pixel cells.
    assert grid.shape == (3 * 66 + 2, 3 * 66 + 2, 3)
    first, second = grid[2:66, 68:132], grid[2:66, 134:198]
    assert (first != second).any()
