"""The public Python interface: `contrastive/__init__.py`'s examples run
as written, and importing `contrastive` prints nothing and loads no backend."""

import doctest
import os
import subprocess
import sys

import pytest

import contrastive
from helpers import ROOT


@pytest.mark.heavy
def test_the_package_docstring_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    failures, tried = doctest.testmod(contrastive, globs={"tmp": tmp_path}, report=True,
                                      optionflags=doctest.ELLIPSIS)
    assert tried >= 8 and failures == 0


def test_importing_contrastive_prints_nothing_and_loads_no_backend():
    code = ("import sys, contrastive; "
            "print(sorted(m for m in ('keras', 'jax', 'torch', 'tensorflow') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n" and result.stderr == ""


def test_the_public_names_resolve():
    for name in contrastive.__all__:
        assert getattr(contrastive, name) is not None, name
    assert contrastive.Run.__module__ == "contrastive.run"
    assert "train" in dir(contrastive)
