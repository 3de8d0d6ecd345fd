"""The Vision Transformer and `keras.applications` encoders: a NumPy ViT
forward pass and the formula of its parameter count, each family's input
convention against Keras' own `preprocess_input`, argument bounds, SimCLR
training (compiled where cheap) and `.keras` reloading."""

import importlib
import json
import os

import keras
import numpy as np
import pytest
from scipy.special import erf

import contrastive
from contrastive.encoders.applications import CONVENTIONS, MODELS, preprocess
from contrastive.encoders.counting import parameter_counts, unallocated
from contrastive.errors import SpecError
from contrastive.registry import build, get_registry
from contrastive.run import load_encoder
from contrastive.training.run_dir import save_encoder

TINY_VIT = {"name": "vit", "patch_size": 4, "width": 32, "depth": 2, "heads": 4, "mlp_dim": 64}


def images(n, side, seed=0):
    return np.random.default_rng(seed).random((n, side, side, 3), dtype=np.float32)


def counted(spec, side):
    with unallocated():
        encoder = build("encoders", spec)
        encoder.build((None, side, side, 3))
    return encoder, parameter_counts(encoder)


# Vision Transformer ------------------------------------------------------


def vit_parameters(patch, width, depth, mlp, side):
    """The paper's architecture counted by hand (no classifier)."""
    tokens = (side // patch) ** 2 + 1
    embedding = patch * patch * 3 * width + width
    attention = 4 * (width * width + width)  # query, key, value, output
    block = 2 * (2 * width) + attention + (width * mlp + mlp) + (mlp * width + width)
    return embedding + width + tokens * width + depth * block + 2 * width


@pytest.mark.parametrize("name, architecture, published", [
    # timm's vit_small_patch16_224 and vit_base_patch16_224, whose counts
    # include a 1000-class head: 22.05M and 86.57M.
    ("vit_small16", (16, 384, 12, 1536), 22.05e6),
    ("vit_base16", (16, 768, 12, 3072), 86.57e6),
])
def test_vit_presets_have_the_published_parameter_counts(name, architecture, published):
    encoder, counts = counted({"name": name}, 224)
    expected = vit_parameters(*architecture, 224)
    assert counts["trainable"] == counts["total"] == expected
    assert expected == {"vit_small16": 21_665_664, "vit_base16": 85_798_656}[name]
    width = architecture[1]
    with_head = expected + width * 1000 + 1000
    assert abs(with_head - published) / published < 5e-4
    assert encoder.compute_output_shape((None, 224, 224, 3)) == (None, width)


def test_summary_command_counts_without_allocating(write_spec):
    from click.testing import CliRunner

    from contrastive_cli.commands.summary import command

    path = write_spec({"data": {"name": "digits", "size": 224}, "encoder": {"name": "vit_base16"},
                       "head": {"name": "mlp"}})
    result = CliRunner().invoke(command, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["encoder"]["parameters"] == 85_798_656
    assert report["encoder"]["output_shape"] == [None, 768]
    result = CliRunner().invoke(command, [
        str(path), "--set", "encoder={name: keras_application, model: ConvNeXtTiny}"])
    assert result.exit_code == 0, result.output
    assert "encoder  keras_application     27,820,128     27,820,128  h (N, 768)" in result.output


def _layer_norm(x, norm):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-6) * _np(norm.gamma) + _np(norm.beta)


def _np(variable):
    return np.asarray(keras.ops.convert_to_numpy(variable), "float64")


def _dense(x, layer):
    return np.tensordot(x, _np(layer.kernel), axes=1) + _np(layer.bias)


def vit_reference(encoder, x):
    """The ViT forward pass in float64 NumPy, from the paper's equations."""
    p, width = encoder.patch_size, encoder.width
    b, h, w, c = x.shape
    patches = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    patches = patches.reshape(b, -1, p * p * c)
    kernel = _np(encoder.embed.kernel).reshape(p * p * c, width)
    tokens = patches @ kernel + _np(encoder.embed.bias)
    cls = np.broadcast_to(_np(encoder.class_token), (b, 1, width))
    z = np.concatenate([cls, tokens], axis=1) + _np(encoder.position_embedding)
    for block in encoder.blocks:
        y = _layer_norm(z, block.norm1)
        mha = block.attention
        q, k, v = (_dense(y, d) for d in (mha.query_dense, mha.key_dense, mha.value_dense))
        scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        heads = np.einsum("bhqk,bkhd->bqhd", weights, v)
        z = z + np.einsum("bqhd,hdo->bqo", heads, _np(mha.output_dense.kernel)) + _np(
            mha.output_dense.bias)
        y = _dense(_layer_norm(z, block.norm2), block.hidden)
        y = 0.5 * y * (1 + erf(y / np.sqrt(2)))  # exact GELU
        z = z + _dense(y, block.out)
    return _layer_norm(z, encoder.norm)[:, 0]


def _randomize(layer, seed=0):
    """Every weight random, biases and norms included, so that each matters."""
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign((0.3 * rng.standard_normal(tuple(v.shape))).astype("float32"))


def test_vit_forward_matches_a_numpy_reference():
    encoder = build("encoders", {**TINY_VIT, "width": 16, "heads": 2, "mlp_dim": 24})
    x = images(3, 8)
    encoder.build(x.shape)
    _randomize(encoder)
    h = keras.ops.convert_to_numpy(encoder(x, training=False))
    reference = vit_reference(encoder, x.astype("float64"))
    assert h.shape == (3, 16)
    np.testing.assert_allclose(h, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("change, message", [
    ({"width": 0}, "encoder.width: expected an integer >= 1 and <= 8192, received 0"),
    ({"depth": 1000}, "encoder.depth: expected an integer >= 1 and <= 128, received 1000"),
    ({"heads": 0}, "encoder.heads: expected an integer >= 1"),
    ({"patch_size": 0}, "encoder.patch_size: expected an integer >= 1"),
    ({"mlp_dim": 10**6}, "encoder.mlp_dim: expected an integer >= 1 and <= 65536"),
    ({"dropout": 1.0}, "encoder.dropout: expected a number >= 0 and < 1, received 1.0"),
    ({"heads": 5}, "heads: expected a divisor of width 32, received 5"),
])
def test_vit_arguments_are_bounded(change, message):
    with pytest.raises(SpecError) as info:
        build("encoders", {**TINY_VIT, **change}, "encoder")
    assert message in str(info.value)


def test_vit_presets_fix_the_architecture():
    params = {p.name for p in get_registry("encoders").parameters("vit_base16")}
    assert params == {"dropout"}
    encoder = build("encoders", {"name": "vit_small16", "dropout": 0.1})
    assert (encoder.patch_size, encoder.width, encoder.depth, encoder.heads,
            encoder.mlp_dim) == (16, 384, 12, 6, 1536)
    config = encoder.get_config()
    assert "width" not in config and config["dropout"] == 0.1
    assert type(encoder).from_config(config).width == 384


def test_vit_refuses_images_it_cannot_patch():
    encoder = build("encoders", TINY_VIT)
    with pytest.raises(ValueError, match="multiples of patch_size 4, received 30x30"):
        encoder(images(1, 30))
    encoder(images(1, 16))
    with pytest.raises(ValueError, match="expected the 16x16 images this ViT was built for"):
        encoder(images(1, 32))


# keras.applications ------------------------------------------------------


def test_every_keras_application_is_listed():
    exported = {n for n in dir(keras.applications)
                if n[0].isupper() and callable(getattr(keras.applications, n))}
    assert set(MODELS) == exported


@pytest.mark.parametrize("model", MODELS)
def test_input_convention_is_the_familys_preprocess_input(model):
    """[0, 1] images scaled as `preprocess_input` scales 0..255 pixels."""
    module = importlib.import_module(getattr(keras.applications, model).__module__)
    x = images(2, 4, seed=1)
    expected = module.preprocess_input(255.0 * x.astype("float64"))
    ours = keras.ops.convert_to_numpy(preprocess(keras.ops.convert_to_tensor(x),
                                                 CONVENTIONS[model]))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("model, side, published, width", [
    # The parameters of Keras' applications table, with the 1000-class
    # classifier this encoder leaves out.
    ("ConvNeXtTiny", 224, 28.6e6, 768),
    ("EfficientNetV2B0", 224, 7.2e6, 1280),
    ("ResNet50V2", 32, 25.6e6, 2048),
])
def test_applications_build_without_their_classifier(model, side, published, width):
    encoder, counts = counted({"name": "keras_application", "model": model}, side)
    assert encoder.compute_output_shape((None, side, side, 3)) == (None, width)
    with_head = counts["total"] + width * 1000 + 1000
    assert abs(with_head - published) / published < 1e-3


def test_application_names_and_sizes_are_checked():
    with pytest.raises(SpecError) as info:
        get_registry("encoders").check({"name": "keras_application", "model": "ResNet51"},
                                       "encoder")
    assert "encoder.model: expected one of ConvNeXtBase" in str(info.value)
    assert 'received "ResNet51"' in str(info.value)
    with pytest.raises(ValueError, match=r"InceptionV3 cannot take images of shape \(32, 32, 3\)"):
        counted({"name": "keras_application", "model": "InceptionV3"}, 32)


# Both: SimCLR training and reloading ---------------------------------------


def _jit_compile(backend):
    """jax, tensorflow: XLA. torch: `torch.compile` takes minutes on two CPU
    cores, so it runs only with CONTRASTIVE_SLOW_TESTS=1; otherwise eagerly."""
    return backend != "torch" or os.environ.get("CONTRASTIVE_SLOW_TESTS") == "1"


@pytest.mark.heavy
@pytest.mark.parametrize("spec", [TINY_VIT, {"name": "keras_application",
                                              "model": "MobileNetV3Small"}],
                         ids=["vit", "MobileNetV3Small"])
def test_trains_in_simclr_and_reloads(spec, backend, tmp_path):
    keras.utils.set_random_seed(0)
    encoder = build("encoders", spec)
    head = build("heads", {"name": "mlp", "output_dim": 8})
    loss = build("losses", {"name": "nt_xent", "temperature": 0.5})
    model = contrastive.SimCLR(encoder, head, None, loss)
    model.compile(optimizer=keras.optimizers.SGD(0.05), jit_compile=_jit_compile(backend))
    x = images(8, 32)
    model(x[:2])
    before = [keras.ops.convert_to_numpy(v).copy() for v in encoder.trainable_weights]
    history = model.fit(x, batch_size=8, epochs=1, verbose=0)
    after = [keras.ops.convert_to_numpy(v) for v in encoder.trainable_weights]
    assert np.isfinite(history.history["loss"][0])
    assert sum(not np.allclose(b, a) for b, a in zip(before, after)) > len(before) // 2
    save_encoder(encoder, (32, 32, 3), tmp_path / "encoder.keras")
    reloaded = load_encoder(tmp_path / "encoder.keras")
    h = keras.ops.convert_to_numpy(model.represent(x[:4]))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(reloaded(x[:4])), h,
                               rtol=1e-5, atol=1e-5)
