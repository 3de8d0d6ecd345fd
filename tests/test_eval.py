"""Evaluation of a finished run: kNN, linear, fine-tuning, embeddings."""

import importlib.util
import json
import re

import numpy as np
import pytest

from contrastive.evaluation.finetune import balanced_subset, finetune_model
from contrastive.evaluation.knn import knn_accuracy
from contrastive.spec import resolve
from contrastive.training import train
from contrastive_cli.main import main

from helpers import tiny_spec


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    import numpy as np

    root = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(48, 16, 16, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, size=48).astype(np.int32)
    np.savez(root / "tiny.npz", images=images, labels=labels)
    np.savez(root / "tiny_test.npz", images=images[:12], labels=labels[:12])
    spec = tiny_spec(root / "tiny.npz", output={"tensorboard": False, "plot": False},
                     eval={"knn": {"enabled": False, "k": 7, "temperature": 0.2},
                           "linear": {"enabled": False, "epochs": 3}})
    train(resolve(spec), out=root / "run", log=lambda line: None)
    return root / "run"


@pytest.mark.parametrize("protocol, extra", [
    ("knn", ["--k", "5"]),
    ("linear", ["--epochs", "2"]),
    ("linear", ["--epochs", "2", "--augment"]),
    ("finetune", ["--fraction", "0.25", "--epochs", "1"]),
    ("finetune", ["--fraction", "0.25", "--epochs", "1", "--start", "head1"]),
    ("finetune", ["--fraction", "0.25", "--epochs", "1", "--no-augment"]),
])
def test_eval_protocols_report_json(capsys, run_dir, protocol, extra):
    code, out, err = cli(capsys, "eval", protocol, "--run", str(run_dir), "--json", *extra)
    assert code == 0, err
    result = json.loads(out)
    assert result["protocol"] == protocol and 0.0 <= result["accuracy"] <= 1.0
    assert result["test"] == 12


def test_eval_table_and_bad_run(capsys, run_dir, tmp_path):
    code, out, _ = cli(capsys, "eval", "knn", "--run", str(run_dir), "--k", "3")
    assert code == 0
    assert out.splitlines()[0].split() == ["protocol", "knn"] and "accuracy" in out
    code, _, err = cli(capsys, "eval", "knn", "--run", str(tmp_path))
    assert code == 2 and "expected a finished run directory" in err


def test_eval_defaults_come_from_the_run_and_options_win(capsys, run_dir):
    code, out, err = cli(capsys, "eval", "knn", "--run", str(run_dir), "--json")
    assert code == 0, err
    assert (json.loads(out)["k"], json.loads(out)["temperature"]) == (7, 0.2)
    code, out, _ = cli(capsys, "eval", "knn", "--run", str(run_dir), "--json", "--k", "5")
    assert json.loads(out)["k"] == 5
    code, out, _ = cli(capsys, "eval", "linear", "--run", str(run_dir), "--json")
    assert json.loads(out)["epochs"] == 3


def test_data_of_another_image_size_is_one_line(capsys, run_dir):
    code, _, err = cli(capsys, "eval", "knn", "--run", str(run_dir),
                       "--data", "{name: digits, size: 8}")
    assert code == 2 and err.count("\n") == 1
    assert "--data: expected images of shape (16, 16, 3)" in err and "(8, 8, 3)" in err


@pytest.mark.parametrize("command", [["eval", "knn"], ["embed", "--out", "OUT/h.npy"],
                                     ["map", "--out", "OUT/map.png"]])
def test_a_run_whose_data_is_gone_names_its_spec_file(capsys, run_dir, tmp_path, command):
    import shutil

    import yaml

    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved)
    spec = yaml.safe_load((moved / "spec.yaml").read_text())
    spec["data"]["path"] = str(tmp_path / "gone.npz")
    (moved / "spec.yaml").write_text(yaml.safe_dump(spec))
    command = [part.replace("OUT", str(tmp_path)) for part in command]
    code, _, err = cli(capsys, *command, "--run", str(moved))
    assert code == 2 and err.count("\n") == 1, err
    assert f"{moved / 'spec.yaml'}: data: {tmp_path / 'gone.npz'}: no such file" in err
    assert list(tmp_path.iterdir()) == [moved]


def test_the_encoder_loads_in_a_fresh_process(run_dir):
    import subprocess
    import sys

    code = ("import contrastive, numpy as np; "
            f"m = contrastive.load_encoder({str(run_dir / 'encoder.keras')!r}); "
            "print(tuple(m(np.zeros((2, 16, 16, 3), 'float32')).shape))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("(2, 8)")


def test_embed_writes_representations(capsys, run_dir, tmp_path):
    out_file = tmp_path / "h.npy"
    labels_file = tmp_path / "y.npy"
    code, _, err = cli(capsys, "embed", "--run", str(run_dir), "--split", "test",
                       "--out", str(out_file), "--labels", str(labels_file))
    assert code == 0, err
    assert np.load(out_file).shape == (12, 8)
    assert np.load(labels_file).shape == (12,)


def test_embed_writes_both_files_or_neither(capsys, run_dir, tmp_path, monkeypatch):
    saves = []
    real = np.save

    def save_then_fail(file, array):
        saves.append(file)
        if len(saves) == 2:
            raise OSError("the disk is gone")
        real(file, array)

    monkeypatch.setattr(np, "save", save_then_fail)
    code, _, err = cli(capsys, "embed", "--run", str(run_dir), "--split", "test",
                       "--out", str(tmp_path / "h.npy"), "--labels", str(tmp_path / "y.npy"))
    assert code == 1 and "the disk is gone" in err and len(saves) == 2
    assert list(tmp_path.iterdir()) == []


def test_embed_labels_of_an_unlabelled_split_are_refused_before_anything_is_written(
        capsys, run_dir, tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "u.npz", images=rng.integers(0, 256, (10, 16, 16, 3), np.uint8))
    code, _, err = cli(capsys, "embed", "--run", str(run_dir), "--data",
                       f"{{name: arrays, path: {tmp_path / 'u.npz'}}}",
                       "--out", str(tmp_path / "h.npy"), "--labels", str(tmp_path / "y.npy"))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "--data: expected a labelled train split to write --labels" in lines[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.npz"]


def test_embed_never_overwrites_a_file(capsys, run_dir, tmp_path):
    mine = tmp_path / "h.npy"
    mine.write_bytes(b"the user's array")
    for args, needle in [(["--out", str(mine)], "--out: expected a path that does not exist"),
                         (["--out", str(tmp_path / "h2.npy"), "--labels", str(mine)],
                          "--labels: expected a path that does not exist"),
                         (["--out", str(tmp_path / "h")], "--out: expected a file name ending "
                                                          "in .npy"),
                         (["--out", str(tmp_path / "h.NPY")], "--out: expected a file name "
                                                              "ending in .npy"),
                         (["--out", str(tmp_path / "h2.npy"), "--labels",
                           str(tmp_path / "h2.npy")], "--labels: expected another file than "
                                                      "--out")]:
        code, _, err = cli(capsys, "embed", "--run", str(run_dir), *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert mine.read_bytes() == b"the user's array"
    assert not (tmp_path / "h2.npy").exists()


def test_a_damaged_encoder_file_is_named_in_one_line(capsys, run_dir, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    encoder = run / "encoder.keras"
    encoder.write_bytes(encoder.read_bytes()[: encoder.stat().st_size // 2])
    for args in (["eval", "knn", "--run", str(run)],
                 ["export", "--run", str(run), "--format", "keras", "--out",
                  str(tmp_path / "e.keras")]):
        code, _, err = cli(capsys, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert f"{encoder}: expected a Keras model file (a zip archive)" in lines[0]
    assert not (tmp_path / "e.keras").exists()


def _rewritten(file, member, change):
    """Rewrites `member` of the zip archive `file` as `change(its bytes)`."""
    import zipfile

    with zipfile.ZipFile(file) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = change(members[member])
    with zipfile.ZipFile(file, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _plugin_gone(config):
    return (config.replace(b"contrastive>SmallCNN", b"gone_plugin>Encoder")
            .replace(b"contrastive.encoders.small_cnn", b"gone_plugin.encoders"))


@pytest.mark.parametrize("member, change, needle", [
    ("config.json", lambda data: b"{" + data[2:], "received a damaged one (JSONDecodeError: "),
    ("model.weights.h5", lambda data: data[: len(data) // 2],
     "received a damaged one (OSError: Unable to synchronously open file (truncated file"),
    ("config.json", _plugin_gone,
     ("expected layer classes registered by installed packages, received gone_plugin>Encoder "
      "(module gone_plugin.encoders), which none registers (install the plugin that provides "
      "it)")),
    ("config.json", lambda data: data.replace(b'"widths": [8, 8]', b'"widths": "8"'),
     "received one Keras cannot rebuild (TypeError: "),
], ids=["json", "weights", "unknown-class", "config-values"])
def test_a_damaged_encoder_inside_its_zip_is_named_in_one_line(capsys, run_dir, tmp_path,
                                                               member, change, needle):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    encoder = run / "encoder.keras"
    _rewritten(encoder, member, change)
    commands = [["eval", "knn"], ["embed", "--out", str(tmp_path / "h.npy")]]
    if "rebuild" not in needle:  # seen without building the model
        commands.append(["export", "--format", "keras", "--out", str(tmp_path / "e.keras")])
    elif importlib.util.find_spec("tensorflow") is not None:  # built in a child process
        commands.append(["export", "--format", "savedmodel", "--out", str(tmp_path / "sm")])
    for args in commands:
        code, _, err = cli(capsys, *args, "--run", str(run))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert f"--run: {encoder}: expected " in lines[0] and needle in lines[0], lines[0]
        assert len(lines[0]) < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_held_out_images_of_another_size_skip_evaluation_with_a_reason(tmp_path, monkeypatch):
    """Where the sizes are seen only when the images are read (before, a
    test split of another shape is refused: `test_bad_inputs`)."""
    from contrastive.datasets.arrays import ArrayFiles
    from contrastive.spec import resolve
    from contrastive.training import train
    from helpers import tiny_spec

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "train.npz", images=rng.integers(0, 256, (32, 16, 16, 3), np.uint8),
             labels=rng.integers(0, 3, 32))
    np.savez(tmp_path / "test.npz", images=rng.integers(0, 256, (8, 8, 8, 3), np.uint8),
             labels=rng.integers(0, 3, 8))
    data = tiny_spec(tmp_path / "train.npz", train={"batch_size": 16, "epochs": 1, "verbose": 0},
                     output={"tensorboard": False, "plot": False})
    data["data"]["test_path"] = str(tmp_path / "test.npz")
    monkeypatch.setattr(ArrayFiles, "shape", lambda self, split="train": None)
    said = []
    run = train(resolve(data), out=tmp_path / "run", log=said.append)
    assert ("evaluation skipped: expected held-out images of the training images' shape "
            "(16, 16, 3), received (8, 8, 3)") in said, said
    assert (run.path / "checkpoint.json").exists()


def test_knn_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    train_x, test_x = rng.normal(size=(30, 4)), rng.normal(size=(7, 4))
    train_y, test_y = rng.integers(0, 3, 30), rng.integers(0, 3, 7)
    expected = []
    for x in test_x:
        sims = (train_x / np.linalg.norm(train_x, axis=1, keepdims=True)) @ (x / np.linalg.norm(x))
        top = np.argsort(-sims)[:5]
        votes = np.zeros(3)
        for i in top:
            votes[train_y[i]] += np.exp(sims[i] / 0.1)
        expected.append(votes.argmax())
    assert knn_accuracy(train_x, train_y, test_x, test_y, k=5) == np.mean(np.array(expected) == test_y)


def test_a_feature_constant_on_the_training_set_is_not_blown_up():
    from contrastive.evaluation.linear import linear_accuracy

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 64)
    informative = (labels[:, None] * 2.0 - 1.0) + rng.normal(0, 0.3, (64, 1))
    train = np.concatenate([informative, np.zeros((64, 1))], axis=1)
    test = train.copy()
    test[:, 1] = 0.5  # a dead channel on the training images, alive on the test ones
    # Divided by a tiny std, the dead feature's 0.5 would swamp the logits
    # (its weight keeps its random initial value) and decide every image.
    accuracy = linear_accuracy(train, labels, test, labels, epochs=50, learning_rate=0.05,
                               num_classes=2)
    assert accuracy > 0.9


def test_balanced_subset_is_fixed_and_balanced():
    labels = np.repeat(np.arange(4), 50)
    first = balanced_subset(labels, 0.1, seed=3)
    assert np.bincount(labels[first]).tolist() == [5, 5, 5, 5]
    assert np.array_equal(first, balanced_subset(labels, 0.1, seed=3))
    assert not np.array_equal(first, balanced_subset(labels, 0.1, seed=4))
    assert np.bincount(labels[balanced_subset(labels, 0.01)]).tolist() == [1, 1, 1, 1]


def _augmented_in_training_only(model):
    """Asserts that `model` (from uint8 16x16 images) gives new outputs at
    each call in training and the same ones in inference; returns the
    images and the inference outputs."""
    import keras

    images = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    train_a = keras.ops.convert_to_numpy(model(images, training=True))
    train_b = keras.ops.convert_to_numpy(model(images, training=True))
    assert not np.allclose(train_a, train_b)
    infer = [keras.ops.convert_to_numpy(model(images, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(infer[0], infer[1])
    return images, infer


def test_finetuning_augments_in_training_only():
    import keras

    encoder = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)])
    model = finetune_model(encoder, (16, 16, 3), 3, augment=True, seed=2)
    images, infer = _augmented_in_training_only(model)
    plain = finetune_model(encoder, (16, 16, 3), 3, augment=False)
    plain.layers[-1].set_weights(model.layers[-1].get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(plain(images, training=True)),
                               infer[0], rtol=1e-5, atol=1e-5)


def test_knn_reports_top1_and_top5_of_the_runs_features(capsys, run_dir):
    from contrastive.evaluation import features_of
    from contrastive.evaluation.data import evaluation_data
    from contrastive.run import Run

    from knn_reference import numpy_knn

    code, out, err = cli(capsys, "eval", "knn", "--run", str(run_dir), "--json", "--k", "4")
    assert code == 0, err
    result = json.loads(out)
    run = Run(run_dir)
    train_split, test_split = evaluation_data(run.spec)
    encoder = run.encoder()
    ranked, _, _ = numpy_knn(features_of(encoder, train_split), train_split.labels,
                             features_of(encoder, test_split), 4, 0.2)
    labels = test_split.labels
    assert result["accuracy"] == np.mean(ranked[:, 0] == labels)
    assert result["top5_accuracy"] == np.mean((ranked == labels[:, None]).any(axis=1))
    code, out, _ = cli(capsys, "eval", "knn", "--run", str(run_dir), "--k", "4")
    assert f"top5_accuracy  {result['top5_accuracy']:.4f}" in out


@pytest.mark.parametrize("args, titles, counts", [
    (["eval", "knn", "--json"], ["h of the training split", "h of the held-out split", "kNN"],
     ["48/48", "12/12 "]),
    (["eval", "linear", "--json", "--epochs", "2"], ["linear classifier"], ["2/2 "]),
    (["embed", "--split", "test", "--out", "{tmp}/h.npy"], ["h of the test split"], ["12/12"]),
])
def test_progress_goes_to_stderr_only_when_asked(capsys, run_dir, tmp_path, args, titles,
                                                 counts):
    args = [a.format(tmp=tmp_path) for a in args] + ["--run", str(run_dir)]
    code, out, err = cli(capsys, *args, "--progress")
    assert code == 0, err
    for title in titles:
        assert f"{title}\n" in err
    plain = re.sub(r"\x1b\[[0-9;]*m", "", err)
    assert all(count in plain for count in counts), plain
    assert "━" not in out and all(title not in out for title in titles)
    if "--json" in args:
        json.loads(out)
    (tmp_path / "h.npy").unlink(missing_ok=True)  # embed never overwrites
    code, out, err = cli(capsys, *args)  # stderr is no terminal here
    assert code == 0 and err == "" and "━" not in out


def test_the_augmented_probe_augments_in_training_only_and_never_trains_the_encoder():
    import keras

    from contrastive.evaluation.linear import augmented_probe

    encoder = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization(),
                                keras.layers.GlobalAveragePooling2D()])
    encoder.build((None, 16, 16, 3))
    before = [keras.ops.convert_to_numpy(w) for w in encoder.weights]
    model = augmented_probe(encoder, (16, 16, 3), 3, (np.zeros(4), np.ones(4)), seed=2)
    _augmented_in_training_only(model)
    # Batch norm ran on its moving statistics in training too: they are unchanged.
    for old, new in zip(before, encoder.weights, strict=True):
        np.testing.assert_array_equal(old, keras.ops.convert_to_numpy(new))


def _colour_split(rng, count, classes=3):
    from contrastive.datasets.base import Arrays

    colours = rng.integers(0, 256, (count, 1, 1, 3))
    images = np.broadcast_to(colours, (count, 16, 16, 3)).astype(np.uint8)
    return Arrays(images, rng.integers(0, classes, count).astype(np.int32))


def test_the_augmented_probe_on_features_crops_cannot_change_is_the_plain_probe():
    """Uniform-colour images and an encoder of channel means: every crop and
    flip gives the unchanged image's h, so the augmented probe must train the
    plain probe's classifier: same initialisation, standardisation, order and
    optimizer. The labels are random, so the accuracy depends on every step."""
    import keras

    from contrastive.evaluation.features import features_of
    from contrastive.evaluation.linear import augmented_linear_accuracy, linear_accuracy

    rng = np.random.default_rng(0)
    train, test = _colour_split(rng, 96), _colour_split(rng, 40)
    encoder = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                                keras.layers.BatchNormalization()])
    encoder.layers[0].trainable = False  # a frozen part stays frozen, the rest trainable
    train_h, test_h = features_of(encoder, train), features_of(encoder, test)
    settings = {"epochs": 4, "learning_rate": 0.05, "batch_size": 16, "seed": 3}
    plain = linear_accuracy(train_h, train.labels, test_h, test.labels, **settings)
    augmented = augmented_linear_accuracy(encoder, train, test, train_h, **settings)
    assert augmented == plain
    assert [layer.trainable for layer in encoder.layers] == [False, True]
    assert augmented_linear_accuracy(encoder, train, train, train_h, **settings) == \
        linear_accuracy(train_h, train.labels, train_h, train.labels, **settings)


def _class_folders(root, classes, per_class=3, size=8):
    from PIL import Image

    rng = np.random.default_rng(len(classes))
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_held_out_folders_are_numbered_as_the_training_folders(tmp_path):
    from contrastive.errors import SpecError
    from contrastive.evaluation.data import evaluation_data

    train_root = _class_folders(tmp_path / "train", ["a", "b", "c"])
    spec = resolve(tiny_spec(tmp_path / "unused.npz"))
    data = {"name": "image_folder", "path": str(train_root), "size": 8,
            "test_path": str(_class_folders(tmp_path / "test", ["b", "c"]))}
    train, test = evaluation_data(spec, data)
    assert train.class_names == test.class_names == ("a", "b", "c")
    # Numbered on its own, the held-out "b" would be 0, the training "a".
    assert test.labels.tolist() == [1, 1, 1, 2, 2, 2]
    data["test_path"] = str(_class_folders(tmp_path / "odd", ["b", "zz"]))
    with pytest.raises(SpecError, match=r"expected held-out classes among the training "
                                        r"split's \(a, b, c\), received zz") as info:
        evaluation_data(spec, data)
    assert info.value.path == "--data"


def test_data_without_a_test_split_says_which_key_gives_one(capsys, run_dir):
    code, _, err = cli(capsys, "eval", "knn", "--run", str(run_dir), "--data",
                       "{name: arrays, path: nope.npz}")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert ("--data: expected a dataset with a test split, received arrays without one "
            "(set its test_path)") in err


def test_load_encoder_reads_an_unzipped_save_as_keras_does(tmp_path):
    import keras

    from contrastive.run import load_encoder

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "unzipped", zipped=False)
    loaded = load_encoder(tmp_path / "unzipped")
    x = np.ones((3, 4), "float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
