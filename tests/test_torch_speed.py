"""The torch speed switches (`contrastive.torch_speed`) change no result:
each is compared with the same model, optimizer or augmenter without it."""

import numpy as np
import keras
import pytest

from contrastive import torch_speed, torch_switches
from contrastive.registry import build

OFF = {name: False for name in torch_speed.SWITCHES}


def test_switches_parse(monkeypatch):
    from contrastive.errors import SpecError

    monkeypatch.setenv("CONTRASTIVE_TORCH_FAST", "0")
    assert torch_switches.fast_switches() == set()
    monkeypatch.setenv("CONTRASTIVE_TORCH_FAST", "layout, kernels")
    assert torch_switches.fast_switches() == {"layout", "kernels"}
    monkeypatch.setenv("CONTRASTIVE_TORCH_FAST", "1")
    assert torch_switches.fast_switches() == set(torch_speed.SWITCHES) - set(torch_speed.OPT_IN)
    monkeypatch.setenv("CONTRASTIVE_TORCH_FAST", "all")
    assert torch_switches.fast_switches() == set(torch_speed.SWITCHES)
    monkeypatch.setenv("CONTRASTIVE_TORCH_FAST", "bogus")
    with pytest.raises(SpecError, match="CONTRASTIVE_TORCH_FAST: .*bogus"):
        torch_switches.fast_switches()
    with pytest.raises(ValueError, match="bogus"), torch_speed.override(bogus=True):
        pass


def test_switches_are_inert_off_torch(backend):
    if backend == "torch":
        pytest.skip("torch: the switches act")
    assert not any(torch_speed.enabled(name) for name in torch_speed.SWITCHES)
    assert torch_speed.internal_data_format() == "channels_last"


def _train(switches, precision="float32", steps=3):
    class Floor(keras.Model):
        def __init__(self):
            super().__init__()
            self.encoder = build("encoders", {"name": "resnet18", "base_width": 8}, "encoder")
            self.head = build("heads", {"name": "mlp", "output_dim": 8}, "head")

        def call(self, x, training=False):
            return self.head(self.encoder(x, training=training), training=training)

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return keras.ops.mean(keras.ops.square(keras.ops.cast(y_pred, "float32")))

    with torch_speed.override(**switches):
        keras.utils.set_random_seed(0)
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(precision)
        try:
            model = Floor()
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False)
            x = np.random.default_rng(1).random((4 * steps, 16, 16, 3), dtype=np.float32)
            model.fit(x, epochs=1, batch_size=4, shuffle=False, verbose=0,
                      callbacks=[torch_speed.callback()])
            out = keras.ops.convert_to_numpy(model(x[:4], training=False))
        finally:
            keras.config.set_dtype_policy(previous)
    weights = [keras.ops.convert_to_numpy(v) for v in model.weights]
    return model, weights, out


def test_layout_kernels_calls_are_bit_identical(backend):
    if backend != "torch":
        pytest.skip("torch only")
    _, base, base_out = _train(OFF)
    model, fast, fast_out = _train({**OFF, "layout": True, "kernels": True, "calls": True})
    assert all(np.array_equal(a, b) for a, b in zip(base, fast))
    assert np.array_equal(base_out, fast_out)
    # The kernels kept their Keras shape; their optimizer slots share the
    # kernel's strides.
    conv = model.encoder.stem.conv
    assert tuple(conv.kernel.shape) == (3, 3, 3, 8)
    momentum = model.optimizer.momentums[model.optimizer._get_variable_index(conv.kernel)]
    assert momentum.value.stride() == conv.kernel.value.stride() != (72, 24, 8, 1)


@pytest.mark.parametrize("axis,shape,precision", [
    (1, (6, 5, 4, 4), "float32"), (-1, (6, 4, 4, 5), "float32"), (-1, (8, 5), "float32"),
    (1, (6, 5, 4, 4), "mixed_bfloat16")])
def test_fused_batch_norm_matches_keras_to_rounding(backend, axis, shape, precision):
    if backend != "torch":
        pytest.skip("torch only")
    import torch

    x = np.random.default_rng(0).normal(1.0, 2.0, size=shape).astype("float32")
    results = []
    for on in (False, True):
        with torch_speed.override(batchnorm=on):
            layer = torch_speed.BatchNormalization(axis=axis, momentum=0.9, epsilon=1e-5,
                                                   dtype=precision)
            layer.build(shape)
            layer.gamma.assign(np.linspace(0.5, 1.5, shape[axis]).astype("float32"))
            layer.beta.assign(np.linspace(-0.2, 0.2, shape[axis]).astype("float32"))
            inputs = torch.tensor(x, requires_grad=True)
            train = layer(inputs, training=True)
            (train.float() * torch.linspace(-1, 1, train.numel()).reshape(shape)).sum().backward()
            infer = layer(inputs, training=False)
            results.append([t.detach().float().numpy() for t in (train, inputs.grad, infer)]
                           + [keras.ops.convert_to_numpy(v) for v in layer.weights]
                           + [keras.ops.convert_to_numpy(layer.gamma.value.grad)])
    tolerance = {"rtol": 1e-5, "atol": 1e-5} if precision == "float32" else {"rtol": 1e-2, "atol": 2e-2}
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **tolerance)


def test_uniform_draws_the_keras_numbers(backend):
    if backend != "torch":
        pytest.skip("torch only")
    results = []
    for on in (False, True):
        gen = keras.random.SeedGenerator(7)
        with torch_speed.override(seeds=on):
            draws = [torch_speed.uniform((5,), 0.5, 2.0, seed=gen) for _ in range(3)]
            gen.state.assign(np.array([3, 9], "int32"))  # written from outside
            draws.append(torch_speed.uniform((2, 3), seed=gen))
        results.append(([keras.ops.convert_to_numpy(d) for d in draws],
                        keras.ops.convert_to_numpy(gen.state)))
    (a, state_a), (b, state_b) = results
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert np.array_equal(state_a, state_b)


@pytest.mark.parametrize("nesterov,classic", [(False, True), (True, True), (False, False), (True, False)])
def test_lars_foreach_matches_per_variable(backend, nesterov, classic):
    if backend != "torch":
        pytest.skip("torch only")
    from contrastive.optimizers.lars import LARS

    rng = np.random.default_rng(0)
    shapes = [(3, 3, 2, 4), (4,), (5, 3), (3,)]
    init = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(3)]
    results = []
    for on in (False, True):
        variables = [keras.Variable(x) for x in init]
        opt = LARS(0.5, weight_decay=1e-2, eta=0.01, nesterov=nesterov, classic_momentum=classic)
        with torch_speed.override(foreach=on):
            for step in grads:
                opt.apply([keras.ops.convert_to_tensor(g) for g in step], variables)
        results.append([keras.ops.convert_to_numpy(v) for v in variables])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
