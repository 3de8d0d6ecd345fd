"""Progress bars of the evaluation phases: Keras' Progbar, on stderr."""

import io
import re

import numpy as np
import pytest

from contrastive.evaluation.linear import linear_accuracy
from contrastive.evaluation.progress import Progress, shows_progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def plain(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_auto_means_when_stderr_is_a_terminal(monkeypatch, capsys):
    assert not shows_progress("auto")  # pytest captures stderr: no terminal
    assert shows_progress(1) and not shows_progress(0)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert shows_progress("auto")
    bar = Progress("h of the training split", 10, "auto", unit_name="image")
    bar.add(4)
    bar.add(6)
    shown = plain(terminal.getvalue())
    assert shown.startswith("h of the training split\n") and "10/10" in shown
    assert "image" in shown and capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="expected verbose 0, 1 or 'auto', received 2"):
        shows_progress(2)


def test_linear_evaluation_shows_one_bar_of_epochs_with_the_loss(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype("float32"), rng.integers(0, 2, 40)
    linear_accuracy(x, y, x, y, epochs=3, batch_size=8, verbose=1)
    out, err = capsys.readouterr()
    shown = plain(err)
    assert out == "" and shown.startswith("linear classifier\n")
    assert "3/3" in shown and "epoch - loss: " in shown and "Epoch 1/3" not in shown
    linear_accuracy(x, y, x, y, epochs=3, batch_size=8, verbose=0)
    assert capsys.readouterr() == ("", "")


def test_the_data_phases_show_bars_when_asked(tmp_path, capsys):
    from PIL import Image

    from contrastive.datasets.image_folder import ImageFolder
    from contrastive.evaluation.progress import default_verbosity

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    folder = ImageFolder(str(tmp_path), size=8, cache=False)
    folder.load()
    assert capsys.readouterr() == ("", "")  # "auto", and stderr is no terminal
    with default_verbosity(1):
        folder.load()
        pytest.importorskip("tensorflow")
        folder.files()
    out, err = capsys.readouterr()
    shown = plain(err)
    assert out == "" and f"decoding 3 images from {tmp_path}\n" in shown
    assert "checking 3 image files\n" in shown and "3/3" in shown
    with default_verbosity(0):
        folder.files()
    assert capsys.readouterr() == ("", "")
