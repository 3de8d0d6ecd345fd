"""The one registry mechanism: register, build with checked arguments, list."""

from typing import Literal

import keras
import pytest

from contrastive import registry
from contrastive.errors import ComponentError, RegistryError, SpecError
from contrastive.registry import KINDS, Registry, get_registry
from contrastive.typecheck import PositiveFloat, Probability


@pytest.fixture
def reg():
    # A private registry of a real kind, so tests never touch the global one.
    r = Registry("losses")
    r._builtins_loaded = True
    r._plugins = {}
    return r


class Toy:
    def __init__(self, rate: PositiveFloat, p: Probability = 0.5,
                 mode: Literal["a", "b"] = "a", steps: int = 3, flag=False):
        self.rate, self.p, self.mode, self.steps, self.flag = rate, p, mode, steps, flag


def test_every_kind_has_a_registry_and_one_class_serves_them_all():
    assert set(registry.REGISTRIES) == set(KINDS)
    assert {type(r) for r in registry.REGISTRIES.values()} == {Registry}


def test_build_checks_and_types_arguments(reg):
    reg.register("toy", Toy)
    toy = reg.build({"name": "toy", "rate": 2, "mode": "b"})
    assert isinstance(toy, Toy)
    assert toy.rate == 2.0 and isinstance(toy.rate, float)
    assert (toy.p, toy.mode, toy.steps) == (0.5, "b", 3)


@pytest.mark.parametrize(
    "spec, path, message",
    [
        ({"name": "toy", "rate": "fast"}, "loss.rate", 'expected a number > 0, received "fast"'),
        ({"name": "toy", "rate": -1}, "loss.rate", "expected a number > 0, received -1"),
        ({"name": "toy", "rate": 1, "p": 1.5}, "loss.p", "expected a number >= 0 and <= 1"),
        ({"name": "toy", "rate": 1, "mode": "c"}, "loss.mode", "expected one of a, b"),
        ({"name": "toy", "rate": 1, "steps": 2.5}, "loss.steps", "expected an integer, received 2.5"),
        ({"name": "toy", "rate": 1, "flag": "yes"}, "loss.flag", "expected true or false"),
        ({"name": "toy", "rate": 1, "stpes": 2}, "loss.stpes", "did you mean 'steps'?"),
        ({"name": "toy"}, "loss", "missing required argument 'rate'"),
        ({"name": "tyo", "rate": 1}, "loss.name", "unknown loss 'tyo'; did you mean 'toy'?"),
        ({"rate": 1}, "loss", "expected a 'name' key"),
        (["toy"], "loss", "expected a mapping"),
    ],
)
def test_bad_arguments_name_the_key_path(reg, spec, path, message):
    reg.register("toy", Toy)
    with pytest.raises(SpecError) as info:
        reg.build(spec, "loss")
    assert info.value.path == path
    assert message in info.value.message


def test_duplicate_names_need_override(reg):
    reg.register("toy", Toy)
    reg.register("toy", Toy)  # the same object again is harmless

    class Other(Toy):
        pass

    with pytest.raises(RegistryError, match="already registered"):
        reg.register("toy", Other)
    reg.register("toy", Other, override=True)
    assert reg.get("toy") is Other


def test_decorator_registers_and_returns_the_class(reg):
    @reg.register("decorated")
    class Decorated(Toy):
        pass

    assert reg.get("decorated") is Decorated


def test_listing_with_glob_patterns(reg):
    for name in ("alpha", "alpine", "beta"):
        reg.register(name, Toy)
    assert reg.names("alp*") == ["alpha", "alpine"]
    assert reg.names("?eta") == ["beta"]
    assert reg.names() == ["alpha", "alpine", "beta"]


def test_context_arguments_are_supplied_not_specified(reg):
    class Scheduled:
        def __init__(self, warmup: int = 1, total_steps: int = 0):
            self.warmup, self.total_steps = warmup, total_steps

    reg.register("scheduled", Scheduled)
    built = reg.build({"name": "scheduled"}, "schedule", context={"total_steps": 7, "unused": 1})
    assert built.total_steps == 7
    with pytest.raises(SpecError, match="set by contrastive at run time"):
        reg.build({"name": "scheduled", "total_steps": 3}, "schedule", context={"total_steps": 7})


def test_constructor_value_errors_become_spec_errors(reg):
    class Picky:
        def __init__(self, size: int = 1):
            raise ValueError("size: expected an even number")

    reg.register("picky", Picky)
    with pytest.raises(SpecError) as info:
        reg.build({"name": "picky"}, "encoder")
    assert info.value.path == "encoder"


def test_keras_components_become_serializable(reg):
    @reg.register("scaled_mse")
    class ScaledMSE(keras.losses.Loss):
        def __init__(self, scale: float = 1.0, **kwargs):
            super().__init__(**kwargs)
            self.scale = scale

        def call(self, y_true, y_pred):
            return self.scale * keras.ops.mean((y_true - y_pred) ** 2, axis=-1)

        def get_config(self):
            return {**super().get_config(), "scale": self.scale}

    assert keras.saving.get_registered_name(ScaledMSE) == "contrastive>ScaledMSE"
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(ScaledMSE(scale=3.0))
    )
    assert isinstance(restored, ScaledMSE) and restored.scale == 3.0


def test_unknown_kind_is_reported_with_a_suggestion():
    with pytest.raises(ComponentError, match="did you mean 'losses'"):
        get_registry("loses")


def test_built_in_components_are_listed():
    assert "nt_xent" in get_registry("losses").names()
    assert {"sgd", "adam", "adamw"} <= set(get_registry("optimizers").names())
    assert {"arrays", "image_folder", "digits"} <= set(get_registry("datasets").names())
    assert "small_cnn" in get_registry("encoders").names()
    assert "mlp" in get_registry("heads").names()
