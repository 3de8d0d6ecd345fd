"""Losses against independent NumPy references: value and gradient, on the
active backend, in float32 and under bfloat16."""

import numpy as np
import pytest

import keras
from keras import ops

from contrastive.losses.dcl import DCL
from contrastive.losses.margin_triplet import MarginTriplet
from contrastive.losses.nt_logistic import NTLogistic
from contrastive.losses.nt_xent import NTXent
from contrastive.registry import build
from contrastive.testing import value_and_grad

# Under bfloat16 projections the loss still computes in float32; the error
# is that of rounding the inputs to bfloat16 (8 bits of mantissa).
BF16_RTOL = 3e-2
BF16_ATOL = 3e-2


# NumPy references (float64, one anchor at a time) ------------------------


def _normalize(z):
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def _pairs(z_a, z_b, negatives="all"):
    """Yields (similarities row, positive index, negative indices) per anchor."""
    z = _normalize(np.concatenate([z_a, z_b]).astype(np.float64))
    n = len(z_a)
    sim = z @ z.T
    for i in range(2 * n):
        pos = i + n if i < n else i - n
        if negatives == "all":
            neg = [k for k in range(2 * n) if k not in (i, pos)]
        else:
            other = range(n, 2 * n) if i < n else range(n)
            neg = [k for k in other if k != pos]
        yield sim[i], pos, np.array(neg)


def ref_nt_xent(z_a, z_b, tau, negatives="all"):
    out = []
    for s, p, neg in _pairs(z_a, z_b, negatives):
        cand = np.concatenate([[p], neg])
        out.append(-s[p] / tau + np.log(np.sum(np.exp(s[cand] / tau))))
    return np.mean(out)


def ref_dcl(z_a, z_b, tau, negatives="all"):
    out = []
    for s, p, neg in _pairs(z_a, z_b, negatives):
        out.append(-s[p] / tau + np.log(np.sum(np.exp(s[neg] / tau))))
    return np.mean(out)


def _log_sigmoid(x):
    return -np.log1p(np.exp(-x))


def ref_nt_logistic(z_a, z_b, tau, reduction="sum", negatives="all"):
    out = []
    for s, p, neg in _pairs(z_a, z_b, negatives):
        terms = -_log_sigmoid(-s[neg] / tau)
        r = terms.sum() if reduction == "sum" else terms.mean()
        out.append(-_log_sigmoid(s[p] / tau) + r)
    return np.mean(out)


def ref_margin_triplet(z_a, z_b, margin, semi_hard=False, reduction="sum", negatives="all"):
    out = []
    for s, p, neg in _pairs(z_a, z_b, negatives):
        if semi_hard:
            neg = np.array([k for k in neg if s[k] < s[p]], dtype=int)
        terms = np.maximum(s[neg] - s[p] + margin, 0.0)
        if reduction == "sum" or len(neg) == 0:
            out.append(terms.sum())
        else:
            out.append(terms.mean())
    return np.mean(out)


def ref_metrics(z_a, z_b, scale):
    acc, ent = [], []
    for s, p, neg in _pairs(z_a, z_b):
        acc.append(float(s[p] > s[neg].max()))
        logits = s[np.concatenate([[p], neg])] * scale
        q = np.exp(logits - logits.max())
        q /= q.sum()
        ent.append(-np.sum(q * np.log(q)))
    return np.mean(acc), np.mean(ent)


def fd_grad(f, z_a, z_b, eps=1e-6):
    """Central finite differences of the NumPy reference, float64."""
    grads = []
    for which in range(2):
        base = [z_a.astype(np.float64).copy(), z_b.astype(np.float64).copy()]
        g = np.zeros_like(base[which])
        for idx in np.ndindex(*g.shape):
            plus = [b.copy() for b in base]
            minus = [b.copy() for b in base]
            plus[which][idx] += eps
            minus[which][idx] -= eps
            g[idx] = (f(*plus) - f(*minus)) / (2 * eps)
        grads.append(g)
    return grads


# The active backend's gradient --------------------------------------------


def backend_value_and_grad(fn, z_a, z_b):
    """Value and gradient of `fn(z_a, z_b)` (keras.ops code) w.r.t. both."""
    return value_and_grad(fn, z_a, z_b, jit=True)


def _inputs(n=4, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)).astype("float32"),
        rng.normal(size=(n, d)).astype("float32"),
    )


CASES = [
    ("nt_xent", lambda: NTXent(temperature=0.5), lambda a, b: ref_nt_xent(a, b, 0.5)),
    ("nt_xent_t01", lambda: NTXent(temperature=0.1), lambda a, b: ref_nt_xent(a, b, 0.1)),
    (
        "nt_xent_other_view",
        lambda: NTXent(temperature=0.5, negatives="other_view"),
        lambda a, b: ref_nt_xent(a, b, 0.5, "other_view"),
    ),
    ("dcl", lambda: DCL(temperature=0.5), lambda a, b: ref_dcl(a, b, 0.5)),
    (
        "nt_logistic",
        lambda: NTLogistic(temperature=0.5),
        lambda a, b: ref_nt_logistic(a, b, 0.5),
    ),
    (
        "nt_logistic_mean",
        lambda: NTLogistic(temperature=0.2, negative_reduction="mean"),
        lambda a, b: ref_nt_logistic(a, b, 0.2, "mean"),
    ),
    (
        "margin_triplet",
        lambda: MarginTriplet(margin=0.5),
        lambda a, b: ref_margin_triplet(a, b, 0.5),
    ),
    (
        "margin_triplet_sh",
        lambda: MarginTriplet(margin=0.5, semi_hard=True),
        lambda a, b: ref_margin_triplet(a, b, 0.5, semi_hard=True),
    ),
    (
        "margin_triplet_sh_mean_other",
        lambda: MarginTriplet(
            margin=0.8, semi_hard=True, negative_reduction="mean", negatives="other_view"
        ),
        lambda a, b: ref_margin_triplet(a, b, 0.8, True, "mean", "other_view"),
    ),
]


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_value_and_gradient_float32(name, make, ref):
    z_a, z_b = _inputs(seed=hash(name) % 1000)
    loss = make()
    value, grads = backend_value_and_grad(lambda a, b: loss(a, b), z_a, z_b)
    expected = ref(z_a, z_b)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-5)
    expected_grads = fd_grad(ref, z_a, z_b)
    for got, want in zip(grads, expected_grads):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=2e-5)


@pytest.mark.parametrize("name,make,ref", CASES[:6], ids=[c[0] for c in CASES[:6]])
def test_value_and_gradient_bfloat16(name, make, ref):
    z_a, z_b = _inputs(seed=7)
    loss = make()
    a16 = ops.cast(z_a, "bfloat16")
    b16 = ops.cast(z_b, "bfloat16")
    value = loss(a16, b16)
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    expected = ref(z_a, z_b)
    np.testing.assert_allclose(
        np.asarray(ops.convert_to_numpy(value)), expected, rtol=BF16_RTOL, atol=BF16_ATOL
    )
    # Gradient through a bfloat16 cast of float32 inputs (mixed precision).
    _, grads = backend_value_and_grad(
        lambda a, b: loss(ops.cast(a, "bfloat16"), ops.cast(b, "bfloat16")), z_a, z_b
    )
    for got, want in zip(grads, fd_grad(ref, z_a, z_b)):
        assert np.all(np.isfinite(got))
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(got, want, rtol=0, atol=BF16_ATOL * max(scale, 1.0))


def test_chunked_equals_unchunked_value_and_gradient():
    z_a, z_b = _inputs(n=3, d=3, seed=3)
    whole = NTXent(temperature=0.2)
    chunked = NTXent(temperature=0.2, chunk_size=4)
    v1, g1 = backend_value_and_grad(lambda a, b: whole(a, b), z_a, z_b)
    v2, g2 = backend_value_and_grad(lambda a, b: chunked(a, b), z_a, z_b)
    np.testing.assert_allclose(v2, v1, rtol=1e-6, atol=1e-6)
    for x, y in zip(g2, g1):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    m1 = whole.metrics_from(z_a, z_b)
    m2 = chunked.metrics_from(z_a, z_b)
    for key in m1:
        np.testing.assert_allclose(
            ops.convert_to_numpy(m2[key]), ops.convert_to_numpy(m1[key]), rtol=1e-5
        )


def test_per_anchor_shape():
    z_a, z_b = _inputs(n=3, d=4)
    loss = NTXent(temperature=0.5, reduction=None)
    assert tuple(loss(z_a, z_b).shape) == (6,)


def test_metrics_match_reference():
    z_a, z_b = _inputs(n=6, d=3, seed=11)
    # Make some positives close so accuracy is neither 0 nor 1.
    z_b[:3] = z_a[:3] + 0.01
    loss = NTXent(temperature=0.5)
    values = loss.metrics_from(z_a, z_b)
    acc, ent = ref_metrics(z_a, z_b, 1 / 0.5)
    assert set(values) == set(loss.metric_names)
    np.testing.assert_allclose(ops.convert_to_numpy(values["contrastive_acc"]), acc, atol=1e-6)
    np.testing.assert_allclose(
        ops.convert_to_numpy(values["contrastive_entropy"]), ent, rtol=1e-5
    )


def test_larger_key_set_through_gather():
    """Two simulated replicas: replica r's loss with gathered keys equals the
    single-device loss of r's anchors over the global batch."""
    z_a, z_b = _inputs(n=6, d=4, seed=5)
    n_local = 3
    tau = 0.3
    full = ops.convert_to_numpy(NTXent(temperature=tau, reduction=None)(z_a, z_b))
    unit = {"a": _normalize(z_a).astype("float32"), "b": _normalize(z_b).astype("float32")}
    for r in range(2):
        local = slice(r * n_local, (r + 1) * n_local)
        order = iter(["a", "b"])  # the loss gathers view a, then view b

        def gather(z, _local=local, _order=order):
            # Every replica's rows, with this replica's own rows in place.
            rows = unit[next(_order)]
            return ops.concatenate(
                [ops.convert_to_tensor(rows[: _local.start]), z,
                 ops.convert_to_tensor(rows[_local.stop :])],
                axis=0,
            )

        loss = NTXent(temperature=tau, reduction=None)
        loss.gather = gather
        loss.replica_offset = lambda _r=r: _r * n_local
        got = ops.convert_to_numpy(loss(z_a[local], z_b[local]))
        want = np.concatenate([full[local], full[6:][local]])
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_no_overflow_with_tiny_temperature():
    z_a, z_b = _inputs(n=4, d=3, seed=2)
    loss = NTXent(temperature=0.005)
    _, grads = backend_value_and_grad(
        lambda a, b: loss(ops.cast(a, "float16"), ops.cast(b, "float16")), z_a, z_b
    )
    assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("name", ["nt_xent", "nt_logistic", "margin_triplet", "dcl"])
def test_registered_and_serialisable(name):
    loss = build("losses", {"name": name, "chunk_size": 8})
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is type(loss)
    assert clone.get_config() == loss.get_config()


def test_spec_rejects_bad_temperature():
    from contrastive.errors import SpecError

    with pytest.raises(SpecError):
        build("losses", {"name": "nt_xent", "temperature": 0})
    with pytest.raises(SpecError):
        build("losses", {"name": "margin_triplet", "semi_hard": "yes"})
