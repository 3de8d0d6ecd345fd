"""Learning-rate schedules and the paper's learning-rate scaling.

The trainer builds a schedule through the registry with the run-time
context (`base_learning_rate`: the optimizer's `learning_rate` from the
spec; `steps_per_epoch`; `total_steps`; `batch_size`) and reads
`schedule.peak_learning_rate` to print it and write it into the run
directory. Without a schedule the rate is the optimizer's, unscaled.
"""

import math
from typing import Literal

import keras
from keras import ops

from contrastive.registry import register
from contrastive.typecheck import NonNegativeFloat, PositiveFloat, PositiveInt, Probability

SCALINGS = ("none", "linear", "sqrt")


def peak_learning_rate(base_learning_rate, batch_size=None, scaling="none"):
    """The learning rate after the paper's scaling (Appendix B.1).

    Args:
        base_learning_rate: the spec's learning rate.
        batch_size: images per step (the global batch).
        scaling: `none` (base), `linear` (base x B / 256: 0.3 x B/256 on
            ImageNet) or `sqrt` (base x sqrt(B): 0.075 x sqrt(B)).

    Returns:
        A Python float.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling: expected one of {', '.join(SCALINGS)}, received {scaling!r}")
    base = float(base_learning_rate)
    if scaling == "none":
        return base
    if batch_size is None:
        raise ValueError(f"scaling '{scaling}' needs the batch size")
    if scaling == "linear":
        return base * batch_size / 256.0
    return base * math.sqrt(batch_size)


@register("schedules", "constant")
class Constant(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate, optionally scaled with the batch size.

    Args:
        scaling: `none`, `linear` (x B/256) or `sqrt` (x sqrt(B)).
        base_learning_rate, batch_size: run-time context.
    """

    def __init__(
        self,
        scaling: Literal["none", "linear", "sqrt"] = "none",
        base_learning_rate: PositiveFloat = 0.1,
        batch_size: PositiveInt | None = None,
    ):
        self.scaling = scaling
        self.base_learning_rate = float(base_learning_rate)
        self.batch_size = batch_size
        self.peak_learning_rate = peak_learning_rate(base_learning_rate, batch_size, scaling)

    def __call__(self, step):
        return ops.convert_to_tensor(self.peak_learning_rate, "float32")

    def describe(self):
        """The resolved schedule: peak rate and its derivation."""
        return {
            "name": "constant",
            "base_learning_rate": self.base_learning_rate,
            "scaling": self.scaling,
            "batch_size": self.batch_size,
            "peak_learning_rate": self.peak_learning_rate,
        }

    def get_config(self):
        return {
            "scaling": self.scaling,
            "base_learning_rate": self.base_learning_rate,
            "batch_size": self.batch_size,
        }


@register("schedules", "warmup_cosine")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to the peak, then cosine decay to
    `final_fraction` x peak at `total_steps` (the official SimCLR
    `WarmUpAndCosineDecay`):

        lr(s) = peak * s / W                                for s < W
        lr(s) = peak * (f + (1 - f) * (1 + cos(pi * (s - W) / (T - W))) / 2)

    with W the warmup steps, T the total steps, f `final_fraction`, and `s`
    the optimizer's iteration count (0 at the first update). Past T the rate
    stays at f x peak.

    Args:
        warmup: warmup length, in `warmup_unit`s (the paper: 10 epochs).
        warmup_unit: `epochs` (times steps_per_epoch, rounded) or `steps`.
        scaling: `none`, `linear` (x B/256, the paper's 0.3 x B/256) or
            `sqrt` (x sqrt(B), the paper's 0.075 x sqrt(B)).
        final_fraction: the rate at the end as a fraction of the peak.
        base_learning_rate, steps_per_epoch, total_steps, batch_size:
            run-time context supplied by the trainer.
    """

    def __init__(
        self,
        warmup: NonNegativeFloat = 10.0,
        warmup_unit: Literal["epochs", "steps"] = "epochs",
        scaling: Literal["none", "linear", "sqrt"] = "linear",
        final_fraction: Probability = 0.0,
        base_learning_rate: PositiveFloat = 0.3,
        steps_per_epoch: PositiveInt | None = None,
        total_steps: PositiveInt | None = None,
        batch_size: PositiveInt | None = None,
    ):
        if warmup_unit not in ("epochs", "steps"):
            raise ValueError(f"warmup_unit: expected one of epochs, steps, received {warmup_unit!r}")
        if warmup < 0:
            raise ValueError(f"warmup: expected a number >= 0, received {warmup}")
        if not 0 <= final_fraction <= 1:
            raise ValueError(f"final_fraction: expected a number >= 0 and <= 1, received {final_fraction}")
        if total_steps is None:
            raise ValueError("warmup_cosine needs total_steps (supplied by the trainer)")
        self.warmup = float(warmup)
        self.warmup_unit = warmup_unit
        self.scaling = scaling
        self.final_fraction = float(final_fraction)
        self.base_learning_rate = float(base_learning_rate)
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = int(total_steps)
        self.batch_size = batch_size
        if warmup_unit == "epochs":
            if steps_per_epoch is None and warmup > 0:
                raise ValueError("warmup in epochs needs steps_per_epoch (supplied by the trainer)")
            self.warmup_steps = int(round(self.warmup * (steps_per_epoch or 0)))
        else:
            if self.warmup != int(self.warmup):
                raise ValueError(f"warmup: expected a whole number of steps, received {warmup}")
            self.warmup_steps = int(self.warmup)
        if self.warmup_steps > self.total_steps:
            raise ValueError(
                f"warmup: {self.warmup_steps} warmup steps exceed the {self.total_steps} total steps"
            )
        self.peak_learning_rate = peak_learning_rate(base_learning_rate, batch_size, scaling)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        warm = float(self.warmup_steps)
        decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
        progress = ops.clip((step - warm) / decay_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = peak * (self.final_fraction + (1.0 - self.final_fraction) * cosine)
        if self.warmup_steps == 0:
            return decayed
        ramp = peak * step / warm
        return ops.where(step < warm, ramp, decayed)

    def describe(self):
        """The resolved schedule: peak rate, warmup and total steps."""
        return {
            "name": "warmup_cosine",
            "base_learning_rate": self.base_learning_rate,
            "scaling": self.scaling,
            "batch_size": self.batch_size,
            "peak_learning_rate": self.peak_learning_rate,
            "warmup_steps": self.warmup_steps,
            "warmup": f"{self.warmup:g} {self.warmup_unit}",
            "total_steps": self.total_steps,
            "steps_per_epoch": self.steps_per_epoch,
            "final_learning_rate": self.peak_learning_rate * self.final_fraction,
        }

    def get_config(self):
        return {
            "warmup": self.warmup,
            "warmup_unit": self.warmup_unit,
            "scaling": self.scaling,
            "final_fraction": self.final_fraction,
            "base_learning_rate": self.base_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "batch_size": self.batch_size,
        }
