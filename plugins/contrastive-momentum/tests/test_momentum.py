"""MoCo v2 and BYOL against independent NumPy references, and the state
they carry from step to step: the momentum network, the queue, the
momentum schedule."""

import keras
import numpy as np
import pytest

from contrastive.distribute.check import build_model, images
from contrastive.testing import check_component, value_and_grad
from contrastive_momentum.byol import BYOL, NormalizedMSE
from contrastive_momentum.moco import InfoNCE, MoCoV2


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def info_nce_reference(q, k, queue, tau):
    logits = np.concatenate([np.sum(q * k, axis=1, keepdims=True), q @ queue.T], axis=1) / tau
    top = logits.max(axis=1, keepdims=True)
    log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
    return np.mean(log_z - logits[:, 0])


def numeric_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += eps
        minus[idx] -= eps
        grad[idx] = (f(plus) - f(minus)) / (2 * eps)
    return grad


def test_info_nce_matches_numpy():
    rng = np.random.default_rng(0)
    q, k, queue = (unit(rng.normal(size=shape)) for shape in ((5, 4), (5, 4), (7, 4)))
    loss = InfoNCE(temperature=0.2)
    value, (grad, _) = value_and_grad(lambda a, b: loss(a, b), q.astype("float32"),
                                      np.concatenate([k, queue]).astype("float32"))
    np.testing.assert_allclose(value, info_nce_reference(q, k, queue, 0.2), rtol=1e-5)
    expected = numeric_gradient(lambda x: info_nce_reference(x, k, queue, 0.2), q)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-5)


def test_normalized_mse_matches_numpy():
    rng = np.random.default_rng(1)
    z, p = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))

    def reference(p):
        return np.mean(np.sum((unit(p) - unit(z)) ** 2, axis=1))

    value, (_, grad) = value_and_grad(lambda a, b: NormalizedMSE()(a, b),
                                      z.astype("float32"), p.astype("float32"))
    np.testing.assert_allclose(value, reference(p), rtol=1e-5)
    np.testing.assert_allclose(grad, numeric_gradient(reference, p), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("name", ["moco_v2", "byol"])
def test_meets_the_method_contract(name):
    check_component("methods", name)


def _weights(layers):
    return [np.array(keras.ops.convert_to_numpy(v)) for layer in layers for v in layer.weights
            if v.trainable or "key" in v.path or "target" in v.path]


def _params(layer):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in layer.weights]


@pytest.mark.parametrize("cls, target", [(MoCoV2, "key"), (BYOL, "target")])
def test_the_target_follows_by_momentum_and_gets_no_gradient(cls, target):
    arguments = {"momentum": 0.9, **({"queue_size": 16} if cls is MoCoV2 else {})}
    model = build_model(method=cls, arguments=arguments)
    online = [model.encoder, model.head]
    follower = [getattr(model, f"{target}_encoder"), getattr(model, f"{target}_head")]
    assert not {id(v) for f in follower for v in f.weights} & {
        id(v) for v in model.trainable_variables}
    x = (images(8) * 255).astype("uint8")
    w0 = [w for layer in online for w in _params(layer)]
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    model.fit(x, epochs=1, batch_size=8, verbose=0, shuffle=False)  # first step: a copy
    w1 = [w for layer in online for w in _params(layer)]
    t1 = [w for layer in follower for w in _params(layer)]
    trainable = [v.trainable for layer in online for v in layer.weights]
    for a, b, train in zip(t1, w0, trainable, strict=True):
        if train:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(w1, w0, strict=True))
    if cls is BYOL:  # the first step's momentum: the schedule at step 1 of total_steps
        tau = float(keras.ops.convert_to_numpy(model.target_momentum()))
        expected_tau = 1 - 0.1 * (np.cos(np.pi * 1 / 10) + 1) / 2
        assert tau == pytest.approx(expected_tau, rel=1e-6)
    else:
        tau = 0.9
    model(x, training=True)  # no optimizer: the target moves, the online does not
    t2 = [w for layer in follower for w in _params(layer)]
    for a, old, new, train in zip(t2, t1, w1, trainable, strict=True):
        if train:
            np.testing.assert_allclose(a, tau * old + (1 - tau) * new, rtol=1e-5, atol=1e-6)


def test_the_queue_takes_the_newest_keys_first():
    model = build_model(method=MoCoV2, arguments={"queue_size": 12})
    before = np.array(keras.ops.convert_to_numpy(model.queue))
    np.testing.assert_allclose(np.linalg.norm(before, axis=1), 1.0, rtol=1e-5)
    outputs = model((images(4) * 255).astype("uint8"), training=True)
    after = np.array(keras.ops.convert_to_numpy(model.queue))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs["queue"]), before, rtol=1e-6)
    np.testing.assert_allclose(after[:4], keras.ops.convert_to_numpy(outputs["k"]), rtol=1e-6)
    np.testing.assert_allclose(after[4:], before[:8], rtol=1e-6)


def test_byol_momentum_rises_to_one_along_a_cosine():
    model = build_model(method=BYOL, arguments={"momentum": 0.99})
    schedule = []
    for step in (0, 5, 10, 20):
        model.steps.assign(float(step))
        schedule.append(float(keras.ops.convert_to_numpy(model.target_momentum())))
    np.testing.assert_allclose(schedule, [0.99, 0.995, 1.0, 1.0], rtol=1e-6)
