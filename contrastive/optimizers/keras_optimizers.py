"""Keras' own optimizers, registered by name."""

from typing import Annotated

import keras

from contrastive.registry import register
from contrastive.typecheck import NonNegativeFloat, PositiveFloat, Range

_Momentum = Annotated[float, Range(0, 1, max_inclusive=False)]
_Beta = Annotated[float, Range(0, 1, max_inclusive=False)]
_COMMON = {
    "learning_rate": PositiveFloat,
    "weight_decay": NonNegativeFloat | None,
    "clipnorm": PositiveFloat | None,
    "clipvalue": PositiveFloat | None,
    "global_clipnorm": PositiveFloat | None,
    "epsilon": PositiveFloat,
    "use_ema": bool,
    "ema_momentum": _Momentum,
    "ema_overwrite_frequency": int | None,
}
_HIDDEN = ("name", "loss_scale_factor", "gradient_accumulation_steps")

register(
    "optimizers",
    "sgd",
    keras.optimizers.SGD,
    annotations={**_COMMON, "momentum": _Momentum, "nesterov": bool},
    hidden=_HIDDEN,
)
register(
    "optimizers",
    "adam",
    keras.optimizers.Adam,
    annotations={**_COMMON, "beta_1": _Beta, "beta_2": _Beta, "amsgrad": bool},
    hidden=_HIDDEN,
)
register(
    "optimizers",
    "adamw",
    keras.optimizers.AdamW,
    annotations={**_COMMON, "beta_1": _Beta, "beta_2": _Beta, "amsgrad": bool},
    hidden=_HIDDEN,
)
