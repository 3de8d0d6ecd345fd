"""The click application: exit codes, one-line errors, the commands."""

import json
import os

import click
import pytest
import yaml

from contrastive_cli.main import app, main

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


def float_options():
    """`(command path, option)` of every float option of every command."""

    def walk(command, path):
        for param in command.params:
            if isinstance(param.type, click.types.FloatParamType):
                yield " ".join(path), param
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(app, []))


def test_every_float_option_refuses_nan_and_infinity(capsys):
    options = float_options()
    assert {(path, param.opts[0]) for path, param in options} >= {
        ("eval knn", "--temperature"), ("eval linear", "--learning-rate"),
        ("eval finetune", "--fraction"), ("eval finetune", "--learning-rate")}
    for path, param in options:
        for value in ("nan", "inf", "-inf"):
            with pytest.raises(click.BadParameter, match="expected a finite number"):
                param.type.convert(value, param, None)
    code, _, err = cli(capsys, "eval", "knn", "--run", "no-such-run", "--temperature", "nan")
    assert code == 2 and err.count("\n") == 1
    assert "'--temperature': expected a finite number, received 'nan'" in err


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc, where no file can be made")
@pytest.mark.parametrize("args", [
    ["embed", "--run", "{tmp}", "--out", "/proc/contrastive-test.npy"],
    ["export", "--run", "{tmp}", "--format", "keras", "--out", "/proc/contrastive-test.keras"],
    ["preview", "{tmp}/no-spec.yaml", "--out", "/proc/contrastive-test.png"],
    ["new-plugin", "contrastive-test", "--out", "/proc/contrastive-test"],
], ids=lambda args: args[0])
def test_an_out_that_cannot_be_written_is_refused_first(capsys, tmp_path, args):
    code, _, err = cli(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: --out: {args[-1]}: cannot write it, /proc is not writable"), err


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


def test_train_json_keeps_stdout_for_the_json_and_the_bars_on_stderr(capsys, tiny_arrays,
                                                                      tmp_path):
    import yaml
    from helpers import tiny_spec

    spec = tiny_spec(tiny_arrays, output={"tensorboard": False, "plot": False},
                     eval={"knn": {"k": 3}, "linear": {"enabled": False}, "baselines": False})
    spec["train"]["verbose"] = 1  # Keras' progress bar, which prints to stdout
    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(spec))
    code, out, err = cli(capsys, "train", str(file), "--out", str(tmp_path / "run"), "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 1
    assert "step - " in err and "step - " not in out
