"""`contrastive export`: every format loads in its own runtime and gives the
encoder's h; torchvision's ResNets load the state dict with `strict=True`
through the printed lines and match; bad input exits 2 with one line."""

import importlib.util
import types

import keras
import numpy as np
import pytest

import contrastive
from contrastive.export import keras_export, torch_resnet
from contrastive.registry import build
from contrastive.run import load_encoder
from contrastive.training.run_dir import save_encoder
from contrastive_cli.main import main

import torchvision_replica
from helpers import tiny_spec

TINY_RESNET = {"name": "resnet18", "base_width": 8}
TINY_VIT = {"name": "vit", "patch_size": 4, "width": 16, "depth": 2, "heads": 2, "mlp_dim": 32}


def installed(*modules):
    return all(importlib.util.find_spec(m) is not None for m in modules)


def cli(capsys, *args):
    """Runs `contrastive ARGS` in this process; returns (code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def randomize(layer, seed=0):
    """Random batch-norm scales, offsets and statistics (kernels keep their
    initialisation), so that every weight shows in h."""
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        name = v.path.rsplit("/", 1)[-1]
        if name in ("gamma", "moving_variance"):
            v.assign(rng.uniform(0.5, 1.5, tuple(v.shape)).astype("float32"))
        elif name in ("beta", "moving_mean"):
            v.assign((0.1 * rng.standard_normal(tuple(v.shape))).astype("float32"))


def encoder_run(path, spec, side):
    """A run directory holding only `encoder.keras`; returns it, the encoder
    and its h of a few random images."""
    encoder = build("encoders", spec)
    encoder.build((None, side, side, 3))
    randomize(encoder)
    path.mkdir()
    save_encoder(encoder, (side, side, 3), path / "encoder.keras")
    x = np.random.default_rng(1).random((3, side, side, 3), dtype=np.float32)
    return path, x, keras.ops.convert_to_numpy(encoder(x, training=False))


def test_a_trained_run_exports_as_keras(capsys, tmp_path, tiny_arrays):
    run = contrastive.train(tiny_spec(tiny_arrays, output={"plot": False, "tensorboard": False}),
                            out=tmp_path / "run", log=lambda line: None)
    code, out, err = cli(capsys, "export", "--run", run.path, "--format", "keras",
                         "--out", tmp_path / "encoder.keras")
    assert code == 0, err
    assert f"wrote the keras export of {run.path}'s encoder" in out
    x = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    exported = load_encoder(tmp_path / "encoder.keras")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(exported(x)),
                                  keras.ops.convert_to_numpy(run.encoder()(x)))


@pytest.mark.heavy
@pytest.mark.parametrize("spec", [TINY_RESNET, TINY_VIT], ids=["resnet", "vit"])
def test_savedmodel_serves_h(spec, tmp_path):
    if not installed("tensorflow"):
        pytest.skip("savedmodel export needs tensorflow")
    run, x, h = encoder_run(tmp_path / "run", spec, 16)
    contrastive.export_encoder(run, "savedmodel", tmp_path / "saved")
    import tensorflow as tf

    saved = tf.saved_model.load(str(tmp_path / "saved"))
    served = saved.serve(tf.constant(x)).numpy()
    np.testing.assert_allclose(served, h, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not installed("tensorflow", "tf2onnx", "onnx", "onnxruntime"),
                    reason="onnx export needs tensorflow, tf2onnx and onnx; loading onnxruntime")
@pytest.mark.parametrize("spec", [TINY_RESNET, TINY_VIT], ids=["resnet", "vit"])
def test_onnx_runs_in_onnxruntime(spec, tmp_path):
    import onnxruntime

    run, x, h = encoder_run(tmp_path / "run", spec, 16)
    contrastive.export_encoder(run, "onnx", tmp_path / "encoder.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "encoder.onnx"))
    (inputs,) = session.get_inputs()
    assert inputs.name == "images" and inputs.shape[1:] == [16, 16, 3]  # any batch size
    np.testing.assert_allclose(session.run(None, {inputs.name: x})[0], h, rtol=1e-5, atol=1e-5)


# torchvision ---------------------------------------------------------------


def torchvision_models(reference):
    """torchvision.models, or the replica where torchvision does not import."""
    if reference == "torchvision":
        return pytest.importorskip("torchvision").models
    return types.SimpleNamespace(**{f"resnet{d}": (lambda d=d: torchvision_replica.resnet(d))
                                    for d in torchvision_replica.ARCHITECTURES})


def load_as_printed(out, models):
    """Runs the loading lines `contrastive export` printed (after its import
    line) with `torchvision.models` = `models`; returns the model."""
    import torch

    lines = [line.strip() for line in out.split("load it with:\n", 1)[1].splitlines()]
    assert lines[0] == "import torch, torchvision"
    namespace = {"torch": torch, "torchvision": types.SimpleNamespace(models=models)}
    exec("\n".join(lines[1:]), namespace)  # noqa: S102 (the printed instructions)
    return namespace["model"]


def torch_h(model, x):
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()


@pytest.mark.parametrize("reference", ["replica", "torchvision"])
@pytest.mark.parametrize("depth, side, cifar_stem", [
    (18, 32, True), (50, 32, True),      # CIFAR stem
    (18, 64, False), (50, 64, False),    # ImageNet stem, even max-pool input (32)
    (18, 66, False),                     # odd max-pool input (33): torchvision's own
])
def test_torchvision_loads_strict_and_matches(capsys, tmp_path, reference, depth, side,
                                               cifar_stem):
    pytest.importorskip("torch")
    models = torchvision_models(reference)
    spec = {"name": f"resnet{depth}", "cifar_stem": cifar_stem}
    run, x, h = encoder_run(tmp_path / "run", spec, side)
    code, out, err = cli(capsys, "export", "--run", run, "--format", "torchvision",
                         "--out", tmp_path / "resnet.pt")
    assert code == 0, err
    assert ("downsample" in out) == (depth == 18)
    assert ("ZeroPad2d((0, 1, 0, 1))" in out) == (side == 64)
    model = load_as_printed(out, models)  # load_state_dict(..., strict=True)
    model.eval()
    np.testing.assert_allclose(torch_h(model, x), h, rtol=1e-5, atol=2e-5)


def test_torchvision_differences_are_where_documented(tmp_path):
    """Without the printed changes: ResNet-18's stage-1 projection has no
    place in torchvision's resnet18, and at an even max-pool input
    torchvision's own max-pool (padding 1 on both sides) shifts the windows."""
    import torch

    run, x, h = encoder_run(tmp_path / "run", {"name": "resnet50", "cifar_stem": False}, 64)
    arrays = torch_resnet.state_dict(load_encoder(run / "encoder.keras").layers[-1])
    model = torchvision_replica.resnet(50)
    model.fc = torch.nn.Identity()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()}, strict=True)
    model.eval()
    assert np.abs(torch_h(model, x) - h).max() > 1e-2 * np.abs(h).max()
    resnet18 = torchvision_replica.resnet(18)
    resnet18.fc = torch.nn.Identity()
    keys = set(resnet18.state_dict())
    run18, _, _ = encoder_run(tmp_path / "run18", {"name": "resnet18"}, 32)
    exported = set(torch_resnet.state_dict(load_encoder(run18 / "encoder.keras").layers[-1]))
    assert exported - keys == {f"layer1.0.downsample.{i}.{name}" for i, name in [
        (0, "weight"), (1, "weight"), (1, "bias"), (1, "running_mean"), (1, "running_var"),
        (1, "num_batches_tracked")]}
    assert keys - exported == set()


def test_max_pool_padding_follows_tensorflow_same_padding():
    # The stem halves the side (rounding up); "same" pads 0 before an even side.
    assert torch_resnet.max_pool_padding((224, 224, 3)) == (0, 1, 0, 1)
    assert torch_resnet.max_pool_padding((226, 226, 3)) is None
    assert torch_resnet.max_pool_padding((225, 224, 3)) == (0, 1, 1, 1)


# Bad input -------------------------------------------------------------------


@pytest.mark.parametrize("spec, args, message", [
    (TINY_RESNET, ["--format", "tflite"],
     "--format: expected one of keras, savedmodel, onnx, torchvision, received 'tflite'"),
    (None, ["--format", "keras"],
     "--run: run: expected a finished run directory with encoder.keras"),
    (TINY_VIT, ["--format", "torchvision"],
     ("--format: torchvision export: expected a run whose encoder is one of resnet18, "
      "resnet34, resnet50, resnet101, resnet152, received vit")),
    (TINY_RESNET, ["--format", "torchvision"],
     ("expected width_multiplier 1 and base_width 64 (torchvision's ResNets), received "
      "width_multiplier 1 and base_width 8")),
    (TINY_RESNET, ["--format", "keras", "--out", "encoder.h5"],
     "--out: expected a file name ending in .keras"),
    (TINY_RESNET, ["--format", "keras", "--out", "run"],
     "--out: expected a path that does not exist yet"),
])
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, monkeypatch, spec, args, message):
    monkeypatch.chdir(tmp_path)
    if spec is None:
        (tmp_path / "run").mkdir()
    else:
        encoder_run(tmp_path / "run", spec, 16)
    if "--out" not in args:
        args = [*args, "--out", "exported"]
    code, out, err = cli(capsys, "export", "--run", "run", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_a_missing_converter_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(keras_export, "installed", lambda module: module != "tf2onnx")
    run, _, _ = encoder_run(tmp_path / "run", TINY_RESNET, 16)
    code, _, err = cli(capsys, "export", "--run", run, "--format", "onnx",
                       "--out", tmp_path / "encoder.onnx")
    assert code == 2
    assert err == "error: --format: onnx export needs tf2onnx installed: pip install tf2onnx\n"
