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


def test_preview_refuses_what_it_cannot_write_in_one_line(tmp_path, write_spec, capsys):
    import pytest

    from contrastive_cli.main import main

    spec = write_spec({"data": {"name": "digits", "size": 16}, "encoder": {"name": "small_cnn"},
                       "augment": {"name": "simclr", "preset": "cifar10"}})
    mine = tmp_path / "mine.png"
    mine.write_bytes(b"the user's picture")
    cases = [
        (["--out", str(mine)], "--out: expected a path that does not exist yet"),
        (["--out", str(tmp_path / "nodir" / "v.png")], "--out: expected an existing folder"),
        (["--out", str(tmp_path / "v.txt")], "--out: expected a file name ending in"),
        (["--out", str(tmp_path / "v.png"), "--split", "validation"],
         "--split: expected one of train, test, received 'validation'"),
    ]
    for args, needle in cases:
        with pytest.raises(SystemExit) as info:
            main(["preview", str(spec), *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and len(err) == 1 and needle in err[0], err
    assert mine.read_bytes() == b"the user's picture"
    assert not (tmp_path / "v.png").exists()
    spec = write_spec({"data": {"name": "digits", "size": 16}, "encoder": {"name": "small_cnn"},
                       "augment": None})
    with pytest.raises(SystemExit) as info:
        main(["preview", str(spec), "--out", str(tmp_path / "v.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and err == [
        f"error: {spec}: augment: expected an augmenter to preview, received null"], err
