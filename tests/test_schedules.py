"""Schedules: values at the start, end of warmup, middle and end."""

import math

import numpy as np
import pytest

import keras

from contrastive.errors import SpecError
from contrastive.registry import build
from contrastive.schedules import peak_learning_rate


def ref(step, peak, warmup, total, final=0.0):
    if step < warmup:
        return peak * step / warmup
    p = min(max((step - warmup) / (total - warmup), 0.0), 1.0)
    return peak * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * p)))


def _value(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_scaling_rules():
    assert peak_learning_rate(0.3, 4096, "linear") == pytest.approx(4.8)
    assert peak_learning_rate(0.075, 4096, "sqrt") == pytest.approx(4.8)
    assert peak_learning_rate(0.3, 4096, "none") == 0.3
    with pytest.raises(ValueError):
        peak_learning_rate(0.3, None, "linear")


def test_warmup_cosine_in_epochs_key_points():
    context = dict(base_learning_rate=0.3, steps_per_epoch=10, total_steps=100, batch_size=512)
    s = build("schedules", {"name": "warmup_cosine", "warmup": 2}, "schedule", context)
    peak = 0.3 * 512 / 256
    assert s.peak_learning_rate == pytest.approx(peak)
    assert s.warmup_steps == 20
    points = {0: 0.0, 10: peak / 2, 20: peak, 60: peak / 2, 100: 0.0, 150: 0.0}
    for step, want in points.items():
        assert _value(s, step) == pytest.approx(want, abs=1e-6), step
    for step in (3, 19, 21, 47, 99):
        assert _value(s, step) == pytest.approx(ref(step, peak, 20, 100), rel=1e-5, abs=1e-7)


def test_warmup_cosine_in_steps_sqrt_and_floor():
    context = dict(base_learning_rate=0.075, total_steps=50, batch_size=256, steps_per_epoch=7)
    s = build(
        "schedules",
        {"name": "warmup_cosine", "warmup": 10, "warmup_unit": "steps", "scaling": "sqrt",
         "final_fraction": 0.1},
        "schedule",
        context,
    )
    peak = 0.075 * 16
    assert s.warmup_steps == 10
    for step in (0, 10, 30, 50, 80):
        assert _value(s, step) == pytest.approx(ref(step, peak, 10, 50, 0.1), rel=1e-5, abs=1e-7)
    assert _value(s, 50) == pytest.approx(0.1 * peak)
    d = s.describe()
    assert d["peak_learning_rate"] == pytest.approx(peak) and d["total_steps"] == 50


def test_no_warmup_and_constant():
    s = build("schedules", {"name": "warmup_cosine", "warmup": 0, "scaling": "none"}, "",
              dict(base_learning_rate=1.0, total_steps=10, steps_per_epoch=5))
    assert _value(s, 0) == pytest.approx(1.0)
    assert _value(s, 5) == pytest.approx(0.5)
    c = build("schedules", {"name": "constant", "scaling": "linear"}, "",
              dict(base_learning_rate=1.0, batch_size=512, total_steps=10))
    assert c.peak_learning_rate == 2.0 and _value(c, 7) == pytest.approx(2.0)


def test_errors_become_spec_errors():
    with pytest.raises(SpecError):
        build("schedules", {"name": "warmup_cosine", "warmup": 20}, "schedule",
              dict(base_learning_rate=0.3, steps_per_epoch=10, total_steps=100))
    with pytest.raises(SpecError):
        build("schedules", {"name": "warmup_cosine", "scaling": "cube"}, "schedule",
              dict(base_learning_rate=0.3, steps_per_epoch=10, total_steps=100))
    with pytest.raises(SpecError):  # context may not come from the spec
        build("schedules", {"name": "warmup_cosine", "total_steps": 5}, "schedule",
              dict(base_learning_rate=0.3, steps_per_epoch=10, total_steps=100))


def test_serialises_inside_an_optimizer():
    s = build("schedules", {"name": "warmup_cosine", "warmup": 1}, "",
              dict(base_learning_rate=0.3, steps_per_epoch=4, total_steps=40, batch_size=256))
    opt = build("optimizers", {"name": "lars"})
    opt = type(opt)(learning_rate=s)
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert clone.learning_rate is not None
    assert clone._learning_rate.get_config() == s.get_config()
    np.testing.assert_allclose(_value(clone._learning_rate, 12), _value(s, 12))
