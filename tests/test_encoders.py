"""ResNet encoders: parameter counts, structure, precision, compiled training."""

import json
import os

import numpy as np
import keras
import pytest

from contrastive.encoders.counting import parameter_counts, unallocated
from contrastive.encoders.resnet import ResNet, ResNet18
from contrastive.registry import build, get_registry

TINY = {"name": "resnet18", "base_width": 8, "zero_init_residual": False}


def counted(spec, side):
    with unallocated():
        encoder = build("encoders", spec)
        encoder.build((None, side, side, 3))
    return encoder, parameter_counts(encoder)


@pytest.mark.parametrize(
    "name, width, side, trainable, paper",
    [
        # Exact counts of this implementation; paper: Table 6 (without the
        # head and the linear classifier), CIFAR: the usual 11.2M figure.
        ("resnet50", 1, 224, 23_508_032, 24e6),
        ("resnet50", 2, 224, 93_907_072, 94e6),
        ("resnet50", 4, 224, 375_378_176, 375e6),
        ("resnet18", 1, 32, 11_173_056, 11.17e6),
    ],
)


def test_parameter_counts_match_the_paper(name, width, side, trainable, paper):
    encoder, counts = counted({"name": name, "width_multiplier": width}, side)
    assert counts["trainable"] == trainable
    assert abs(counts["trainable"] - paper) / paper < 0.025
    assert encoder.cifar_stem is (side <= 32)


@pytest.mark.parametrize(
    "name, width, out",
    [("resnet18", 1, 512), ("resnet34", 2, 1024), ("resnet50", 1, 2048),
     ("resnet101", 1, 2048), ("resnet152", 4, 8192)],
)


def test_output_width_and_depth(name, width, out):
    encoder, _ = counted({"name": name, "width_multiplier": width}, 64)
    assert encoder.compute_output_shape((None, 64, 64, 3)) == (None, out)
    convs = [v for v in encoder.weights if v.name == "kernel"]
    depth = int(name.removeprefix("resnet"))
    assert len(convs) == depth - 1 + 4  # no classifier; 4 projection shortcuts


def test_other_depths_count():
    expected = {"resnet34": 21_288_896, "resnet101": 42_500_160, "resnet152": 58_143_808}
    for name, trainable in expected.items():
        _, counts = counted({"name": name}, 224)
        assert counts["trainable"] == trainable


def test_registered_with_typed_arguments():
    registry = get_registry("encoders")
    for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
        assert name in registry.names()
    params = {p.name: p for p in registry.parameters("resnet50")}
    assert set(params) >= {"width_multiplier", "cifar_stem", "zero_init_residual"}
    with pytest.raises(Exception, match="width_multiplier"):
        registry.check({"name": "resnet50", "width_multiplier": 3}, "encoder")
    with pytest.raises(TypeError):
        ResNet()


def test_cifar_stem_auto_and_explicit():
    small, _ = counted({"name": "resnet18"}, 32)
    large, _ = counted({"name": "resnet18"}, 64)
    forced, _ = counted({"name": "resnet18", "cifar_stem": False}, 32)
    assert small.cifar_stem is True and small.stem_pool is None
    assert small.stem.kernel_size == 3 and small.stem.strides == 1
    assert large.cifar_stem is False and large.stem_pool is not None
    assert large.stem.kernel_size == 7 and large.stem.strides == 2
    assert forced.cifar_stem is False
    # The saved config records the resolved choice.
    assert small.get_config()["cifar_stem"] is True
    assert large.get_config()["cifar_stem"] is False
    assert ResNet18(cifar_stem=None).get_config()["cifar_stem"] is None


def test_batch_norm_and_initialisers_follow_the_official_code():
    encoder, _ = counted({"name": "resnet50"}, 224)
    norms = [layer for layer in encoder._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(n.momentum == 0.9 and n.epsilon == 1e-5 for n in norms)
    convs = [layer for layer in encoder._flatten_layers(include_self=False, recursive=True)
             if isinstance(layer, keras.layers.Conv2D)]
    init = convs[0].kernel_initializer
    assert isinstance(init, keras.initializers.VarianceScaling)
    assert (init.scale, init.mode) == (1.0, "fan_in")
    # v1.5: the stride of a downsampling bottleneck is in its 3x3 convolution.
    down = encoder.blocks[3]
    assert down.strides == 2
    assert [u.strides for u in down.branch] == [1, 2, 1]
    assert [u.kernel_size for u in down.branch] == [1, 3, 1]
    assert all(b.branch[-1].norm.gamma_initializer.__class__.__name__ == "Zeros"
               for b in encoder.blocks)
    plain, _ = counted({"name": "resnet50", "zero_init_residual": False}, 224)
    assert plain.blocks[0].branch[-1].norm.gamma_initializer.__class__.__name__ == "Ones"


def test_forward_gives_h():
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    encoder = build("encoders", TINY)
    h = keras.ops.convert_to_numpy(encoder(x, training=False))
    assert h.shape == (2, 64) and np.all(np.isfinite(h)) and np.all(h >= 0)


def test_mixed_bfloat16_encoder_and_float32_projection():
    x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        encoder = build("encoders", TINY)
        head = build("heads", {"name": "mlp", "output_dim": 8})
        h = encoder(x, training=True)
        z = head(h, training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(h.dtype) == "bfloat16"
    assert keras.backend.standardize_dtype(z.dtype) == "float32"
    assert all(v.dtype == "float32" for v in encoder.weights)
    # A layer policy alone (global float32) reaches every sub-layer.
    with unallocated():
        local = ResNet18(base_width=8, dtype="mixed_bfloat16")
        local.build((None, 16, 16, 3))
    layers = local._flatten_layers(include_self=True, recursive=True)
    assert all(layer.compute_dtype == "bfloat16" for layer in layers)


def _jit_compile(backend):
    """jax, tensorflow: XLA. torch: `torch.compile` works here but takes about
    three minutes on two CPU cores, so it runs only with CONTRASTIVE_SLOW_TESTS=1;
    otherwise torch runs the same step eagerly."""
    if backend in ("jax", "tensorflow"):
        return True
    return os.environ.get("CONTRASTIVE_SLOW_TESTS") == "1"


def test_forward_and_backward_under_the_compiled_step(backend):
    rng = np.random.default_rng(0)
    x = rng.random((4, 16, 16, 3), dtype=np.float32)
    y = rng.standard_normal((4, 8)).astype("float32")
    keras.utils.set_random_seed(0)
    encoder = build("encoders", TINY)
    head = build("heads", {"name": "mlp", "output_dim": 8})
    inputs = keras.Input((16, 16, 3))
    model = keras.Model(inputs, head(encoder(inputs)))
    jit = _jit_compile(backend)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=jit)
    before = keras.ops.convert_to_numpy(encoder.stem.conv.kernel).copy()
    moving = keras.ops.convert_to_numpy(encoder.stem.norm.moving_mean).copy()
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    after = keras.ops.convert_to_numpy(encoder.stem.conv.kernel)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(before, after)  # gradients reached the first layer
    assert not np.allclose(moving, keras.ops.convert_to_numpy(encoder.stem.norm.moving_mean))


def test_summary_command_reports_counts(write_spec):
    from click.testing import CliRunner

    from contrastive_cli.commands.summary import command

    path = write_spec({
        "data": {"name": "digits", "size": 224},
        "encoder": {"name": "resnet50"},
        "head": {"name": "mlp"},
    })
    result = CliRunner().invoke(command, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["encoder"]["trainable_parameters"] == 23_508_032
    assert report["encoder"]["output_shape"] == [None, 2048]
    assert report["head"]["output_shape"] == [None, 128]
    assert report["total"]["parameters"] == (
        report["encoder"]["parameters"] + report["head"]["parameters"])
    result = CliRunner().invoke(command, [
        str(path), "--set", "data.size=32", "--set", "encoder.name=resnet18"])
    assert result.exit_code == 0, result.output
    assert "11,173,056" in result.output and "h (N, 512)" in result.output
