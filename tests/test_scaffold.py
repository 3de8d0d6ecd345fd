"""`contrastive new-plugin`: the skeleton it writes, and what it refuses."""

import ast
import tomllib

import pytest
from click.testing import CliRunner

from contrastive.errors import SpecError
from contrastive.scaffold import KINDS, plugin_names, write_plugin


def test_names_are_derived_from_the_distribution_name():
    names = plugin_names("contrastive-Fancy.Loss", "losses")
    assert (names.package, names.component, names.class_name, names.module) == (
        "contrastive_fancy_loss", "fancy_loss", "FancyLoss", "loss")
    assert plugin_names("mylib", "encoders", component="tiny_vit").class_name == "TinyVit"


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_writes_an_installable_skeleton(tmp_path, kind):
    root, names = write_plugin(f"contrastive-demo-{kind}", kind, tmp_path / kind,
                               check_builtins=False)
    project = tomllib.loads((root / "pyproject.toml").read_text())
    assert project["project"]["name"] == f"contrastive-demo-{kind}"
    entry = project["project"]["entry-points"][f"contrastive.{kind}"]
    assert entry == {names.component: f"{names.package}.{names.module}:{names.class_name}"}
    component = root / "src" / names.package / f"{names.module}.py"
    tree = ast.parse(component.read_text())
    assert names.class_name in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    test = root / "tests" / f"test_{names.package}.py"
    assert "def test_" in test.read_text()
    ast.parse(test.read_text())
    ast.parse((root / "src" / names.package / "__init__.py").read_text())


def test_refuses_a_non_empty_directory_and_bad_names(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(SpecError, match="not empty"):
        write_plugin("contrastive-x", "losses", tmp_path / "taken", check_builtins=False)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    for bad in ("9lives", "a b", "-x", ""):
        with pytest.raises(SpecError, match="NAME"):
            plugin_names(bad)
    with pytest.raises(SpecError, match="component"):
        plugin_names("ok", component="Bad-Name")


def test_cli_writes_the_plugin_and_refuses_built_in_names(tmp_path):
    from contrastive_cli.main import app

    runner = CliRunner()
    out = tmp_path / "plugin"
    result = runner.invoke(app, ["new-plugin", "contrastive-blur2", "--kind", "augmenters",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "blur2" in result.output and (out / "src" / "contrastive_blur2" / "augmenter.py").exists()
    again = runner.invoke(app, ["new-plugin", "contrastive-blur2", "--out", str(out)])
    assert again.exit_code != 0 and isinstance(again.exception, SpecError)
    clash = runner.invoke(app, ["new-plugin", "contrastive-nt-xent", "--out", str(tmp_path / "c")])
    assert isinstance(clash.exception, SpecError) and "built-in" in str(clash.exception)
    assert not (tmp_path / "c").exists()


def test_an_out_inside_a_file_is_one_line(capsys, tmp_path):
    from contrastive_cli.main import main

    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    with pytest.raises(SystemExit) as info:
        main(["new-plugin", "contrastive-x", "--out", str(a_file / "x")])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --out: expected an existing folder to write x into"), err
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("kind", KINDS)
def test_each_kinds_skeleton_passes_the_linter(tmp_path, kind):
    import subprocess
    import sys

    root, _ = write_plugin(f"contrastive-lint-{kind}", kind, tmp_path / kind, check_builtins=False)
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--line-length", "100",
         "--select", "E,F,W,I,B,UP", "--target-version", "py311", str(root)],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
