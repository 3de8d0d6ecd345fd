"""`contrastive explain`: resolved schedule and departures from the paper."""

import json

import pytest
import yaml
from click.testing import CliRunner

from contrastive.errors import SpecError
from contrastive.explain import PAPER_DEFAULTS, explain, render
from contrastive.spec import resolve
from contrastive_cli.main import app, main

PAPER_CIFAR = {
    "data": {"name": "digits"},
    "augment": {"name": "simclr", "preset": "cifar10"},
    "encoder": {"name": "small_cnn"},
    "loss": {"name": "nt_xent", "temperature": 0.5},
    "optimizer": {"name": "lars", "learning_rate": 1.0, "weight_decay": 1e-4, "momentum": 0.9},
    "schedule": {"name": "warmup_cosine", "warmup": 10, "scaling": "linear"},
    "train": {"batch_size": 512, "epochs": 100, "steps_per_epoch": 20},
}


def _write(tmp_path, data):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_paper_cifar_recipe_has_no_departures():
    result = explain(resolve(PAPER_CIFAR))
    assert result.preset == "cifar10"
    assert result.departures == []
    s = result.schedule
    assert s["peak_learning_rate"] == pytest.approx(2.0)
    assert s["warmup_steps"] == 200 and s["total_steps"] == 2000


def test_departures_listed():
    spec = resolve(
        PAPER_CIFAR,
        ["loss.temperature=0.2", "optimizer.weight_decay=1e-6", "schedule.scaling=sqrt"],
    )
    keys = {d.key: d for d in explain(spec).departures}
    assert set(keys) == {"loss.temperature", "optimizer.weight_decay", "optimizer.learning_rate"}
    assert keys["loss.temperature"].paper == 0.5
    text = render(explain(spec))
    assert "loss.temperature: 0.2 (paper: 0.5" in text


def test_imagenet_preset_and_no_schedule():
    data = dict(PAPER_CIFAR, augment={"name": "simclr", "preset": "imagenet"})
    data.pop("schedule")
    data["optimizer"] = {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9}
    result = explain(resolve(data))
    assert result.preset == "imagenet"
    keys = {d.key for d in result.departures}
    assert {"optimizer.name", "schedule.name", "loss.temperature", "train.batch_size",
            "optimizer.learning_rate"} <= keys
    assert result.schedule["peak_learning_rate"] == 0.1
    assert set(PAPER_DEFAULTS) == {"imagenet", "cifar10"}


def test_steps_from_the_dataset_size():
    data = dict(PAPER_CIFAR, train={"batch_size": 64, "epochs": 20})
    result = explain(resolve(data))
    assert result.schedule["steps_per_epoch"] >= 1
    assert result.schedule["total_steps"] == 20 * result.schedule["steps_per_epoch"]


def test_cli_text_and_json(tmp_path):
    path = _write(tmp_path, PAPER_CIFAR)
    runner = CliRunner()
    out = runner.invoke(app, ["explain", path, "--set", "train.batch_size=1024"])
    assert out.exit_code == 0, out.output
    assert "peak learning rate: 4 = 1 x 1024/256" in out.output
    assert "train.batch_size: 1024 (paper: 512" in out.output
    out = runner.invoke(app, ["explain", path, "--json"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.output)
    assert payload["schedule"]["peak_learning_rate"] == pytest.approx(2.0)
    assert payload["departures"] == []


def test_cli_bad_input_exits_2(tmp_path, capsys):
    path = _write(tmp_path, PAPER_CIFAR)
    with pytest.raises(SystemExit) as exc:
        main(["explain", path, "--set", "schedule.warmup=1000"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "schedule" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SpecError):
        explain(resolve(PAPER_CIFAR, ["schedule.scaling=cube"]))


def test_explain_shows_how_h_will_be_evaluated(tmp_path):
    path = _write(tmp_path, PAPER_CIFAR)
    runner = CliRunner()
    out = runner.invoke(app, ["explain", path, "--set", "eval.knn.k=20",
                              "--set", "eval.knn.temperature=0.07",
                              "--set", "eval.linear.epochs=7",
                              "--set", "eval.linear.learning_rate=0.01",
                              "--set", "eval.linear.batch_size=64"])
    assert out.exit_code == 0, out.output
    text = out.output.split("evaluation of h on the test split of data:\n")[1]
    assert "knn: k 20, temperature 0.07" in text
    assert "similarity: cosine" in text and "exp(similarity / temperature)" in text
    assert "top-1 accuracy and top-5 accuracy" in text
    assert "linear: 7 epochs, learning rate 0.01, batch size 64, optimizer Adam" in text
    assert "standardised with the training split's mean and standard deviation" in text
    assert "knn monitor: off" in text
    out = runner.invoke(app, ["explain", path, "--json", "--set", "eval.linear.enabled=false",
                              "--set", "eval.monitor_every=5",
                              "--set", "eval.data={name: digits, size: 8}"])
    evaluation = json.loads(out.output)["evaluation"]
    assert evaluation["knn"]["enabled"] and (evaluation["knn"]["k"],
                                             evaluation["knn"]["temperature"]) == (200, 0.1)
    assert not evaluation["linear"]["enabled"]
    assert {key: evaluation["linear"][key] for key in
            ("epochs", "learning_rate", "batch_size", "optimizer")} == {
        "epochs": 100, "learning_rate": 1e-3, "batch_size": 256, "optimizer": "Adam"}
    assert evaluation["held_out"] == "eval.data (digits)" and evaluation["monitor_every"] == 5
    text = render(explain(resolve(PAPER_CIFAR, ["eval.linear.enabled=false"])))
    assert "linear: off (eval.linear.enabled: false)" in text


def test_the_optimizer_explain_names_is_the_one_linear_evaluation_uses():
    from contrastive.evaluation.linear import describe, linear_classifier

    classifier = linear_classifier(4, 3, learning_rate=0.02)
    assert type(classifier.optimizer).__name__ == describe(1, 0.02, 8)["optimizer"]
    assert float(classifier.optimizer.learning_rate) == pytest.approx(0.02)
