"""The click application: exit codes, one-line errors, the commands."""

import json

import pytest
import yaml

from contrastive_cli.main import main

from helpers import tiny_spec


def cli(capsys, *args):
    """Runs `contrastive ARGS` in this process; returns (code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_list_shows_every_kind(capsys):
    code, out, _ = cli(capsys, "list")
    assert code == 0
    for kind in ("augmenters", "encoders", "heads", "losses", "optimizers", "schedules", "datasets"):
        assert f"{kind}:" in out
    assert "nt_xent" in out and "small_cnn" in out


def test_list_with_a_pattern(capsys):
    code, out, _ = cli(capsys, "list", "optimizers", "adam*", "--json")
    assert code == 0
    assert {row["name"] for row in json.loads(out)} == {"adam", "adamw"}


def test_show_gives_arguments_and_defaults(capsys):
    code, out, _ = cli(capsys, "show", "losses", "nt_xent")
    assert code == 0
    assert "temperature: a number > 0; default 0.1" in out
    assert "built-in" in out
    code, out, _ = cli(capsys, "show", "losses", "nt_xent", "--json")
    args = {a["name"]: a for a in json.loads(out)["arguments"]}
    assert args["temperature"]["default"] == 0.1 and not args["temperature"]["required"]


def test_show_unknown_component_is_a_usage_error(capsys):
    code, _, err = cli(capsys, "show", "losses", "nt_xnet")
    assert code == 2
    assert err.count("\n") == 1 and "did you mean 'nt_xent'" in err
    code, _, err = cli(capsys, "show", "loses", "nt_xent")
    assert code == 2 and "did you mean 'losses'" in err


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"loss": {"name": "no_such_loss"}}, "loss.name: unknown loss 'no_such_loss'"),
        ({"trian": {}}, "trian: unknown key; did you mean 'train'?"),
        ({"optimizer": {"name": "sgd", "learning_rate": "fast"}},
         'optimizer.learning_rate: expected a number > 0, received "fast"'),
        ({"optimizer": {"name": "sgd", "momentum": 1.5}}, "optimizer.momentum: expected a number >= 0 and < 1"),
    ],
)
def test_validate_rejects_bad_specs_with_one_line(capsys, write_spec, tiny_arrays, change, expected):
    data = tiny_spec(tiny_arrays)
    data.update(change)
    file = write_spec(data)
    code, out, err = cli(capsys, "validate", str(file))
    assert code == 2
    assert err.startswith(f"error: {file}: {expected}")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "suffix, text",
    [(".yaml", "seed: [1,\n"), (".toml", "seed = = 1\n"), (".json", "{seed: 1}")],
)
def test_validate_rejects_malformed_files(capsys, write_spec, suffix, text):
    file = write_spec(None, suffix, text=text)
    code, _, err = cli(capsys, "validate", str(file))
    assert code == 2
    assert err.startswith(f"error: {file}: ") and "malformed" in err
    assert err.count("\n") == 1


def test_validate_accepts_and_prints_the_resolved_spec(capsys, write_spec, tiny_arrays):
    file = write_spec(tiny_spec(tiny_arrays))
    code, out, _ = cli(capsys, "validate", str(file), "--set", "train.epochs=4", "--print")
    assert code == 0
    assert yaml.safe_load(out)["train"]["epochs"] == 4


def test_usage_errors_exit_2(capsys):
    code, _, err = cli(capsys, "validate")
    assert code == 2 and "Missing argument" in err


def test_info(capsys, backend):
    code, out, _ = cli(capsys, "info", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["backend"] == backend
    assert info["devices"] and "keras" in info["packages"]


def completions(args, incomplete):
    """What click's shell completion offers after `contrastive ARGS INCOMPLETE`."""
    from click.shell_completion import ShellComplete

    from contrastive_cli.main import app

    complete = ShellComplete(app, {}, "contrastive", "_CONTRASTIVE_COMPLETE")
    return [item.value for item in complete.get_completions(args, incomplete)]


def test_kinds_and_names_complete():
    from contrastive.kinds import NAMES
    from contrastive.registry import get_registry

    assert completions(["show"], "") == list(NAMES)
    assert completions(["show"], "lo") == ["losses"]
    assert completions(["list"], "o") == ["optimizers"]
    assert completions(["show", "losses"], "") == get_registry("losses").names()
    assert completions(["show", "losses"], "nt_") == ["nt_logistic", "nt_xent"]
    assert completions(["list", "optimizers"], "ad") == ["adam", "adamw"]
    assert completions(["show", "loses"], "") == []
    assert completions(["list"], "zzz") == []


def test_completion_through_the_shell_protocol(capsys, monkeypatch):
    monkeypatch.setenv("_CONTRASTIVE_COMPLETE", "bash_complete")
    monkeypatch.setenv("COMP_WORDS", "contrastive show heads ml")
    monkeypatch.setenv("COMP_CWORD", "3")
    code, out, _ = cli(capsys)
    assert code == 0 and out.split() == ["plain,mlp"]
    monkeypatch.setenv("_CONTRASTIVE_COMPLETE", "zsh_complete")
    monkeypatch.setenv("COMP_WORDS", "contrastive list dat")
    monkeypatch.setenv("COMP_CWORD", "2")
    code, out, _ = cli(capsys)
    assert out.splitlines()[:3] == ["plain", "datasets", "spec section data"]
    monkeypatch.setenv("_CONTRASTIVE_COMPLETE", "fish_source")
    code, out, _ = cli(capsys)
    assert code == 0 and "complete --no-files --command contrastive" in out


def test_completing_names_prints_nothing_else(tmp_path):
    """The backend's start-up lines must not reach the user's prompt."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, _CONTRASTIVE_COMPLETE="bash_complete",
               COMP_WORDS="contrastive show losses nt", COMP_CWORD="3")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run([sys.executable, "-c", "from contrastive_cli.main import main; main()"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
                            check=False)
    assert result.returncode == 0
    assert result.stdout.split() == ["plain,nt_logistic", "plain,nt_xent"]
    assert result.stderr == ""
