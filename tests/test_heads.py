"""Projection heads: mlp (v1, v2), linear, identity."""

import numpy as np
import keras
import pytest

from contrastive.encoders.counting import parameter_counts, unallocated
from contrastive.heads.linear import LinearUnit
from contrastive.registry import build, get_registry


def built(spec, width):
    with unallocated():
        head = build("heads", spec)
        head.build((None, width))
    return head


def test_registered():
    assert {"mlp", "linear", "identity"} <= set(get_registry("heads").names())


def test_mlp_v1_is_two_layers_of_the_input_width_to_128():
    head = built({"name": "mlp"}, 2048)
    assert len(head.hidden) == 1
    assert head.hidden[0].units == 2048 and head.out.units == 128
    assert head.compute_output_shape((None, 2048)) == (None, 128)
    # Dense 2048x2048 (no bias) + BN (gamma, beta), Dense 2048x128 + BN (gamma).
    expected = 2048 * 2048 + 2 * 2048 + 2048 * 128 + 128
    assert parameter_counts(head)["trainable"] == expected


def test_mlp_v2_is_three_layers():
    head = built({"name": "mlp", "num_layers": 3, "hidden_dim": 64, "output_dim": 16}, 32)
    assert [u.units for u in head.hidden] == [64, 64]
    assert head.out.units == 16


def test_batch_norm_as_the_official_code_and_switchable():
    head = built({"name": "mlp"}, 32)
    hidden, out = head.hidden[0], head.out
    for unit in (hidden, out):
        assert unit.norm.momentum == 0.9 and unit.norm.epsilon == 1e-5
        assert unit.dense.use_bias is False
        assert unit.dense.kernel_initializer.stddev == 0.01
    assert hidden.norm.center is True and out.norm.center is False
    plain = built({"name": "mlp", "batch_norm": False}, 32)
    assert plain.hidden[0].norm is None and plain.out.norm is None
    assert plain.hidden[0].dense.use_bias is True and plain.out.dense.use_bias is False


def test_linear_and_identity():
    linear = built({"name": "linear", "output_dim": 16}, 32)
    assert parameter_counts(linear)["trainable"] == 32 * 16 + 16
    h = np.random.default_rng(0).random((3, 32), dtype=np.float32)
    identity = build("heads", "identity")
    z = identity(h)
    assert keras.backend.standardize_dtype(z.dtype) == "float32"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(z), h)
    assert identity.count_params() == 0


@pytest.mark.parametrize("name", ["mlp", "linear", "identity"])
def test_float32_projection_under_mixed_precision(name):
    h = np.random.default_rng(0).random((4, 16), dtype=np.float32)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        head = build("heads", name)
        z = head(keras.ops.cast(h, "bfloat16"), training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert keras.backend.standardize_dtype(z.dtype) == "float32"
    if name == "mlp":
        assert head.hidden[0].dense.compute_dtype == "bfloat16"
        assert head.out.dense.compute_dtype == "float32"


def test_forward_training_and_inference():
    h = np.random.default_rng(0).standard_normal((4, 16)).astype("float32")
    head = build("heads", {"name": "mlp", "output_dim": 8})
    z = keras.ops.convert_to_numpy(head(h, training=True))
    assert z.shape == (4, 8)
    # The last batch norm standardises z over the batch in training.
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-4)
    z_eval = keras.ops.convert_to_numpy(head(h, training=False))
    assert z_eval.shape == (4, 8) and np.all(np.isfinite(z_eval))


def test_config_round_trip():
    for spec in ({"name": "mlp", "num_layers": 3, "hidden_dim": 8, "output_dim": 4,
                  "batch_norm": False}, {"name": "linear", "output_dim": 4}, "identity"):
        head = build("heads", spec)
        config = head.get_config()
        clone = type(head).from_config(config)
        assert clone.get_config() == config
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(head))
        assert type(restored) is type(head)
    unit = LinearUnit(4, use_bias=False)
    assert LinearUnit.from_config(unit.get_config()).use_bias is False
