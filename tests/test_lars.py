"""LARS against a NumPy reference of the official SimCLR formula."""

import numpy as np
import pytest

import keras

from contrastive.optimizers.lars import LARS
from contrastive.registry import build


def ref_lars(params, grads_per_step, lr, momentum, wd, eta, nesterov, classic, excluded):
    """NumPy transcription of SimCLR's LARSOptimizer, float64."""
    params = [p.astype(np.float64).copy() for p in params]
    vs = [np.zeros_like(p) for p in params]
    for grads in grads_per_step:
        for i, (w, g) in enumerate(zip(params, grads)):
            g = g.astype(np.float64)
            if not excluded[i]:
                g = g + wd * w
            if classic:
                trust = 1.0
                if not excluded[i]:
                    wn, gn = np.linalg.norm(w), np.linalg.norm(g)
                    trust = eta * wn / gn if (wn > 0 and gn > 0) else 1.0
                vs[i] = momentum * vs[i] + lr * trust * g
                update = momentum * vs[i] + lr * trust * g if nesterov else vs[i]
                params[i] = w - update
            else:
                vs[i] = momentum * vs[i] + g
                update = momentum * vs[i] + g if nesterov else vs[i]
                trust = 1.0
                if not excluded[i]:
                    wn, un = np.linalg.norm(w), np.linalg.norm(update)
                    trust = eta * wn / un if (wn > 0 and un > 0) else 1.0
                params[i] = w - lr * trust * update
    return params


@pytest.mark.parametrize(
    "nesterov,classic,exclude_max_rank",
    [(False, True, 1), (True, True, 1), (False, False, 1), (True, False, None)],
)
def test_matches_reference_over_steps(nesterov, classic, exclude_max_rank):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (4,), (2, 2, 3), (4,)]
    init = [rng.normal(size=s).astype("float32") for s in shapes]
    init[3] = np.zeros(4, "float32")  # a zero variable: trust ratio 1
    variables = [keras.Variable(x) for x in init]
    steps = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(4)]
    kw = dict(lr=0.5, momentum=0.9, wd=1e-2, eta=0.01)
    opt = LARS(
        learning_rate=kw["lr"],
        momentum=kw["momentum"],
        weight_decay=kw["wd"],
        eta=kw["eta"],
        nesterov=nesterov,
        classic_momentum=classic,
        exclude_max_rank=exclude_max_rank,
    )
    for grads in steps:
        opt.apply([keras.ops.convert_to_tensor(g) for g in grads], variables)
    excluded = [
        exclude_max_rank is not None and len(s) <= exclude_max_rank for s in shapes
    ]
    expected = ref_lars(init, steps, nesterov=nesterov, classic=classic, excluded=excluded, **kw)
    for var, want in zip(variables, expected):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(var), want, rtol=1e-5, atol=1e-6)


def test_exclude_layers_by_type():
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, use_bias=False), keras.layers.LayerNormalization()]
    )
    opt = LARS(learning_rate=0.1, exclude_max_rank=None)
    opt.exclude_layers(model)
    kernel, gamma, beta = model.weights
    assert not opt.is_excluded(kernel)
    assert opt.is_excluded(gamma) and opt.is_excluded(beta)


def test_config_round_trip_and_registry():
    opt = build(
        "optimizers",
        {"name": "lars", "learning_rate": 1.2, "weight_decay": 1e-4, "eta": 0.002,
         "nesterov": True, "classic_momentum": False, "exclude_max_rank": 0, "momentum": 0.8},
    )
    config = opt.get_config()
    for key, value in dict(weight_decay=1e-4, eta=0.002, nesterov=True, momentum=0.8,
                           classic_momentum=False, exclude_max_rank=0).items():
        assert config[key] == pytest.approx(value) if isinstance(value, float) else config[key] == value
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is LARS
    assert clone.get_config() == config


def test_spec_rejects_bad_values():
    from contrastive.errors import SpecError

    for bad in ({"momentum": 1.0}, {"eta": 0}, {"weight_decay": -1.0}, {"nesterov": "no"}):
        with pytest.raises(SpecError):
            build("optimizers", {"name": "lars", **bad})


def test_fit_save_reload_keeps_optimizer_state(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(4),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=LARS(learning_rate=0.1, weight_decay=1e-4, nesterov=True), loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.optimizer) is LARS
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    before = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    after = [keras.ops.convert_to_numpy(v) for v in loaded.optimizer.variables]
    assert len(before) == len(after) > 1
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 2
