"""VICReg and Barlow Twins against independent NumPy references.

The references below are written from the papers' equations in float64
NumPy; their gradients are central finite differences of those references.
The losses' values and gradients (on the active Keras backend) must match.
"""

import keras
import numpy as np
import pytest
from keras import ops

from contrastive.testing import value_and_grad
from contrastive_redundancy.barlow_twins import BarlowTwins
from contrastive_redundancy.vicreg import VICReg


# NumPy references ----------------------------------------------------------


def vicreg_reference(za, zb, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4):
    n, d = za.shape
    invariance = np.mean((za - zb) ** 2)

    def variance(z):
        std = np.sqrt(np.var(z, axis=0, ddof=1) + eps)
        return np.mean(np.maximum(0.0, gamma - std))

    def covariance(z):
        cov = np.cov(z, rowvar=False)  # unbiased, (d, d)
        off = cov[~np.eye(d, dtype=bool)]
        return np.sum(off**2) / d

    return (lam * invariance + mu * (variance(za) + variance(zb))
            + nu * (covariance(za) + covariance(zb)))


def barlow_reference(za, zb, lam=5e-3, eps=1e-5):
    n, d = za.shape
    na = (za - za.mean(0)) / np.sqrt(za.var(0) + eps)
    nb = (zb - zb.mean(0)) / np.sqrt(zb.var(0) + eps)
    c = np.einsum("bi,bj->ij", na, nb) / n
    on = np.sum((1.0 - np.diag(c)) ** 2)
    off = np.sum(c[~np.eye(d, dtype=bool)] ** 2)
    return on + lam * off


def numeric_gradient(fn, za, zb, h=1e-6):
    """Central differences of a float64 NumPy function of (za, zb)."""
    grads = []
    for which in (0, 1):
        args = [za.copy(), zb.copy()]
        g = np.zeros_like(args[which])
        for idx in np.ndindex(*g.shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[which][idx] += h
            minus[which][idx] -= h
            g[idx] = (fn(*plus) - fn(*minus)) / (2 * h)
        grads.append(g)
    return grads


# The backend's gradient ----------------------------------------------------


def backend_gradient(loss, za, zb):
    """(value, d/dz_a, d/dz_b) of `loss(z_a, z_b)` with the active backend."""
    value, (ga, gb) = value_and_grad(lambda a, b: loss(a, b), za.astype("float32"),
                                     zb.astype("float32"))
    return float(value), ga, gb


def views(seed, n=8, d=4, scale=1.0):
    rng = np.random.default_rng(seed)
    za = rng.normal(size=(n, d)) * scale
    zb = za + 0.5 * rng.normal(size=(n, d)) * scale
    return za, zb


# VICReg --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, scale",
    [
        ({}, 0.5),  # standard deviations below gamma: the hinge is active
        ({}, 3.0),  # above gamma: the variance term is zero
        ({"invariance_weight": 1.0, "variance_weight": 2.0,
          "covariance_weight": 0.5, "gamma": 2.0, "epsilon": 1e-3}, 1.0),
    ],
)
def test_vicreg_matches_numpy_value_and_gradient(kwargs, scale):
    za, zb = views(0, scale=scale)
    names = {"invariance_weight": "lam", "variance_weight": "mu",
             "covariance_weight": "nu", "gamma": "gamma", "epsilon": "eps"}
    ref_kwargs = {names[k]: v for k, v in kwargs.items()}

    def reference(a, b):
        return vicreg_reference(a, b, **ref_kwargs)

    value, ga, gb = backend_gradient(VICReg(**kwargs), za, zb)
    np.testing.assert_allclose(value, reference(za, zb), rtol=1e-4, atol=1e-5)
    ra, rb = numeric_gradient(reference, za, zb)
    np.testing.assert_allclose(ga, ra, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gb, rb, rtol=1e-3, atol=1e-4)


def test_vicreg_collapsed_views_pay_the_variance_term():
    z = np.ones((6, 3), "float32")
    value = float(VICReg()(z, z))
    # Invariance and covariance are zero; each view pays mu * (1 - sqrt(eps)).
    np.testing.assert_allclose(value, 2 * 25.0 * (1 - np.sqrt(1e-4)), rtol=1e-5)


# Barlow Twins -------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"redundancy_weight": 0.5, "epsilon": 1e-3}])
def test_barlow_twins_matches_numpy_value_and_gradient(kwargs):
    za, zb = views(1, n=10, d=5)
    ref_kwargs = {"lam": kwargs.get("redundancy_weight", 5e-3),
                  "eps": kwargs.get("epsilon", 1e-5)}

    def reference(a, b):
        return barlow_reference(a, b, **ref_kwargs)

    value, ga, gb = backend_gradient(BarlowTwins(**kwargs), za, zb)
    np.testing.assert_allclose(value, reference(za, zb), rtol=1e-4, atol=1e-5)
    ra, rb = numeric_gradient(reference, za, zb)
    np.testing.assert_allclose(ga, ra, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gb, rb, rtol=1e-3, atol=1e-4)


def test_barlow_twins_identical_decorrelated_views_cost_nothing():
    # Orthogonal, centred columns: C is the identity, the loss is ~0.
    q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(16, 4)))
    z = (q - q.mean(0)).astype("float32")
    assert float(BarlowTwins()(z, z)) < 1e-3


# Both ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", [VICReg, BarlowTwins])
def test_config_round_trip_and_float16_inputs(cls):
    loss = cls()
    clone = cls.from_config(loss.get_config())
    za, zb = views(3)
    full = float(loss(za.astype("float32"), zb.astype("float32")))
    assert float(clone(za.astype("float32"), zb.astype("float32"))) == pytest.approx(full)
    half = clone(ops.cast(za, "float16"), ops.cast(zb, "float16"))
    assert keras.backend.standardize_dtype(half.dtype) == "float32"
    assert float(half) == pytest.approx(full, rel=1e-2)


@pytest.mark.parametrize("cls, bad", [
    (VICReg, {"gamma": 0.0}), (VICReg, {"variance_weight": -1.0}),
    (BarlowTwins, {"redundancy_weight": -1.0}), (BarlowTwins, {"epsilon": 0.0}),
])
def test_rejects_out_of_range_arguments(cls, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        cls(**bad)


@pytest.mark.parametrize("cls", [VICReg, BarlowTwins])
def test_trains_the_standard_two_view_model(cls):
    """A few SGD steps of contrastive's SimCLR model with this loss."""
    from contrastive.model import SimCLR

    keras.utils.set_random_seed(0)
    encoder = keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(8)])
    head = keras.layers.Dense(4)
    model = SimCLR(encoder, head, augmenter=None, loss=cls())
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    images = np.random.default_rng(0).uniform(size=(16, 4, 4, 3)).astype("float32")
    history = model.fit(images, batch_size=8, epochs=2, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
