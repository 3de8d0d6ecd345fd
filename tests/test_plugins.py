"""Plugins: a distribution installed with pip adds components by entry point."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from helpers import built_once, tiny_spec

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "contrastive-toy-plugin"
version = "1.2.3"

[project.entry-points."contrastive.losses"]
toy_loss = "toy_plugin.losses:ToyLoss"
broken_loss = "toy_plugin.broken:BrokenLoss"
nt_xent = "toy_plugin.losses:ToyLoss"

[tool.setuptools]
packages = ["toy_plugin"]
"""

LOSSES = '''
import keras
from keras import ops


class ToyLoss(keras.losses.Loss):
    """Mean squared distance between the two views' normalised projections."""

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, z_a, z_b):
        z_a = z_a / ops.norm(z_a, axis=1, keepdims=True)
        z_b = z_b / ops.norm(z_b, axis=1, keepdims=True)
        return self.scale * ops.sum((z_a - z_b) ** 2, axis=1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}
'''


@pytest.fixture(scope="module")
def plugin_site():
    """The toy plugin, installed with pip into a private folder once a test
    run (`built_once`)."""
    return built_once("toy-plugin", _install) / "site"


def _install(root):
    src = root / "src"
    (src / "toy_plugin").mkdir(parents=True)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "toy_plugin" / "__init__.py").write_text("")
    (src / "toy_plugin" / "losses.py").write_text(LOSSES)
    (src / "toy_plugin" / "broken.py").write_text("import a_module_that_does_not_exist\n")
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
        check=True, capture_output=True,
    )


def run(args, site=None, env=None):
    full_env = {**os.environ, **(env or {})}
    if site is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(site), full_env.get("PYTHONPATH", "")]
        )
    return subprocess.run(
        [sys.executable, "-m", "contrastive_cli.main", *args],
        capture_output=True, text=True, env=full_env, timeout=600,
    )


def test_installed_plugin_is_listed_with_its_distribution(plugin_site):
    result = run(["list", "losses", "--json"], plugin_site)
    assert result.returncode == 0, result.stderr
    rows = {(r["name"], r["origin"]): r for r in json.loads(result.stdout)}
    toy = rows[("toy_loss", "contrastive-toy-plugin")]
    assert toy["status"] == "ok" and toy["version"] == "1.2.3"
    broken = rows[("broken_loss", "contrastive-toy-plugin")]
    assert broken["status"] == "failed to import"
    assert "a_module_that_does_not_exist" in broken["error"]
    assert rows[("nt_xent", "built-in")]["status"] == "ok"
    assert "shadowed" in rows[("nt_xent", "contrastive-toy-plugin")]["status"]


def test_discovery_imports_nothing(plugin_site):
    code = textwrap.dedent("""
        import sys
        from contrastive.registry import get_registry
        names = get_registry("losses").names()
        assert "toy_loss" in names and "broken_loss" in names, names
        assert "toy_plugin.losses" not in sys.modules
        get_registry("losses").get("toy_loss")
        assert "toy_plugin.losses" in sys.modules
        print("ok")
    """)
    env = {**os.environ, "PYTHONPATH": str(plugin_site)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.stdout.strip().endswith("ok"), result.stderr


def test_plugin_trains_from_a_spec_and_built_ins_win(plugin_site, tiny_arrays, tmp_path):
    spec = tmp_path / "plugin.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(
        tiny_arrays, loss={"name": "toy_loss", "scale": 2.0},
        eval={"knn": {"enabled": False}, "linear": {"enabled": False}})))
    result = run(["train", str(spec), "--out", str(tmp_path / "run"), "--json"], plugin_site)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["epochs"] == 1
    resolved = yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())
    assert resolved["loss"] == {"name": "toy_loss", "scale": 2.0}
    shown = run(["show", "losses", "nt_xent", "--json"], plugin_site)
    assert json.loads(shown.stdout)["origin"] == "built-in"


def test_broken_plugin_fails_only_when_requested(plugin_site, tiny_arrays, tmp_path):
    spec = tmp_path / "broken.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tiny_arrays, loss={"name": "broken_loss"})))
    result = run(["validate", str(spec)], plugin_site)
    assert result.returncode == 2
    # TensorFlow's C++ start-up notices may precede it; the error is one line.
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    line = errors[0]
    assert "loss.name" in line and "contrastive-toy-plugin" in line and "failed to import" in line
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(tiny_spec(tiny_arrays)))
    assert run(["validate", str(ok)], plugin_site).returncode == 0


def test_plugins_can_be_disabled(plugin_site):
    result = run(["list", "losses", "--json"], plugin_site,
                 env={"CONTRASTIVE_DISABLE_PLUGINS": "1"})
    assert result.returncode == 0, result.stderr
    assert {r["origin"] for r in json.loads(result.stdout)} == {"built-in"}
