"""LARS (You et al. 2017) as the official SimCLR code applies it."""

from typing import Annotated

import keras
from keras import ops

from contrastive.registry import register
from contrastive.typecheck import NonNegativeFloat, NonNegativeInt, PositiveFloat, Range

_Momentum = Annotated[float, Range(0, 1, max_inclusive=False)]
NORM_LAYER_TYPES = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


@register(
    "optimizers",
    "lars",
    hidden=("name", "loss_scale_factor", "gradient_accumulation_steps"),
)
class LARS(keras.optimizers.Optimizer):
    """Layer-wise adaptive rate scaling with momentum (SimCLR's optimizer).

    For each variable w with gradient g, as in the official SimCLR
    `LARSOptimizer` (classic momentum):

        g = g + weight_decay * w                       (if not excluded)
        trust = eta * ||w|| / ||g||  (1 if either norm is 0, or excluded)
        v = momentum * v + learning_rate * trust * g
        w = w - v            (Nesterov: w - (momentum * v + lr * trust * g))

    With `classic_momentum=False` the momentum accumulates the raw g and the
    trust ratio uses the norm of the update instead:
    `v = momentum * v + g; u = v (or momentum * v + g); w -= lr * eta *
    ||w|| / ||u|| * u`.

    Weight decay is part of the gradient before the trust ratio; Keras'
    decoupled weight decay is not applied.

    Exclusions: variables of rank <= `exclude_max_rank` (default 1: biases
    and batch-norm scale and offset) get neither weight decay nor
    adaptation; null excludes none by rank. `exclude_layers(model)` also
    excludes every variable of normalisation layers (or of any layer types
    given) by layer type; those exclusions are kept by variable and are not
    serialised (the rank rule is).

    Args:
        learning_rate: the (peak) learning rate, or a schedule.
        momentum: momentum coefficient.
        weight_decay: l2 coefficient added to the gradient.
        eta: trust coefficient.
        nesterov: Nesterov momentum.
        classic_momentum: the official code's default ordering (see above).
        exclude_max_rank: variables of at most this rank are excluded from
            weight decay and adaptation; null: no exclusion by rank.
        clipnorm, clipvalue, global_clipnorm, use_ema, ema_momentum,
        ema_overwrite_frequency: as for every Keras optimizer.
    """

    def __init__(
        self,
        learning_rate: PositiveFloat = 0.3,
        momentum: _Momentum = 0.9,
        weight_decay: NonNegativeFloat = 1e-6,
        eta: PositiveFloat = 0.001,
        nesterov: bool = False,
        classic_momentum: bool = True,
        exclude_max_rank: NonNegativeInt | None = 1,
        clipnorm: PositiveFloat | None = None,
        clipvalue: PositiveFloat | None = None,
        global_clipnorm: PositiveFloat | None = None,
        use_ema: bool = False,
        ema_momentum: _Momentum = 0.99,
        ema_overwrite_frequency: int | None = None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name="lars",
        **kwargs,
    ):
        weight_decay = 0.0 if weight_decay is None else float(weight_decay)
        super().__init__(
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            clipnorm=clipnorm,
            clipvalue=clipvalue,
            global_clipnorm=global_clipnorm,
            use_ema=use_ema,
            ema_momentum=ema_momentum,
            ema_overwrite_frequency=ema_overwrite_frequency,
            loss_scale_factor=loss_scale_factor,
            gradient_accumulation_steps=gradient_accumulation_steps,
            name=name,
            **kwargs,
        )
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum: expected a number >= 0 and < 1, received {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay: expected a number >= 0, received {weight_decay}")
        if not eta > 0:
            raise ValueError(f"eta: expected a number > 0, received {eta}")
        if exclude_max_rank is not None and exclude_max_rank < 0:
            raise ValueError(
                f"exclude_max_rank: expected an integer >= 0 or null, received {exclude_max_rank}"
            )
        self.momentum = float(momentum)
        self.eta = float(eta)
        self.nesterov = bool(nesterov)
        self.classic_momentum = bool(classic_momentum)
        self.exclude_max_rank = None if exclude_max_rank is None else int(exclude_max_rank)
        self._excluded_keys = set()

    # Exclusions ---------------------------------------------------------

    def exclude_layers(self, model, layer_types=NORM_LAYER_TYPES):
        """Excludes every variable of the layers of `model` that are
        instances of `layer_types` from weight decay and adaptation (not
        serialised; call before the first step)."""
        for layer in model._flatten_layers(include_self=True, recursive=True):
            if isinstance(layer, tuple(layer_types)):
                for variable in layer.weights:
                    self._excluded_keys.add(self._var_key(variable))

    def is_excluded(self, variable):
        """True when `variable` gets neither weight decay nor adaptation."""
        if self._var_key(variable) in self._excluded_keys:
            return True
        return self.exclude_max_rank is not None and len(variable.shape) <= self.exclude_max_rank

    # The update -----------------------------------------------------------

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _apply_weight_decay(self, variables):
        # Weight decay enters the gradient in `update_step`, before the
        # trust ratio; the base class' decoupled decay must not run.
        return

    def _trust(self, w, u):
        w_norm = ops.sqrt(ops.sum(ops.square(w)))
        u_norm = ops.sqrt(ops.sum(ops.square(u)))
        safe = ops.where(u_norm > 0, u_norm, ops.ones_like(u_norm))
        ratio = self.eta * w_norm / safe
        one = ops.ones_like(ratio)
        return ops.where(w_norm > 0, ops.where(u_norm > 0, ratio, one), one)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        from contrastive import torch_speed

        if torch_speed.enabled("foreach") and self._foreach_applies(grads, trainable_variables):
            return self._foreach_update_step(grads, trainable_variables, learning_rate)
        return super()._backend_update_step(grads, trainable_variables, learning_rate)

    def _foreach_applies(self, grads, variables):
        import torch

        if torch.compiler.is_compiling():
            return False
        return all(isinstance(g, torch.Tensor) and g.dtype == v.value.dtype
                   and g.dtype in (torch.float32, torch.float64)
                   for g, v in zip(grads, variables))

    def _foreach_update_step(self, grads, variables, learning_rate):
        """`update_step` for every variable at once on torch: the same
        formulas as `torch._foreach_*` ops over the lists of weights,
        gradients and momenta (a few dozen ops a step instead of about
        fifteen per variable) and the trust ratios of all variables as one
        vector. No host sync; equal to `update_step` up to float rounding
        (the norms sum in another order)."""
        import torch

        with torch.no_grad():
            dtype = variables[0].value.dtype
            lr = torch.as_tensor(learning_rate.value if isinstance(learning_rate, keras.Variable)
                                 else learning_rate).to(dtype=dtype, device=grads[0].device)
            ws = [v.value for v in variables]
            vs = [self.momentums[self._get_variable_index(v)].value for v in variables]
            excluded = [self.is_excluded(v) for v in variables]
            inc = [i for i, e in enumerate(excluded) if not e]
            gs = list(grads)
            if inc and self.weight_decay:
                decayed = torch._foreach_add([gs[i] for i in inc], [ws[i] for i in inc],
                                             alpha=self.weight_decay)
                for i, g in zip(inc, decayed):
                    gs[i] = g
            m = self.momentum

            def trust(i_list, us):
                return self._foreach_trust(lr, [ws[i] for i in i_list], us)

            if self.classic_momentum:
                scaled = [lr] * len(variables)
                if inc:
                    for i, s in zip(inc, trust(inc, [gs[i] for i in inc])):
                        scaled[i] = s
                # next_v = m * v + scaled_lr * g
                step = torch._foreach_mul(gs, scaled)
                torch._foreach_mul_(vs, m)
                torch._foreach_add_(vs, step)
                if self.nesterov:
                    update = torch._foreach_mul(vs, m)
                    torch._foreach_add_(update, step)
                else:
                    update = vs
                torch._foreach_sub_(ws, update)
            else:
                torch._foreach_mul_(vs, m)
                torch._foreach_add_(vs, gs)
                if self.nesterov:
                    update = torch._foreach_mul(vs, m)
                    torch._foreach_add_(update, gs)
                else:
                    update = list(vs)
                scaled = [lr] * len(variables)
                if inc:
                    for i, s in zip(inc, trust(inc, [update[i] for i in inc])):
                        scaled[i] = s
                torch._foreach_sub_(ws, torch._foreach_mul(update, scaled))

    def _foreach_trust(self, lr, weights, updates):
        """lr x trust ratio of each variable, as 0-d tensors (torch)."""
        import torch

        w_norm = torch.stack(torch._foreach_norm(weights))
        u_norm = torch.stack(torch._foreach_norm(updates))
        one = torch.ones_like(w_norm)
        ratio = self.eta * w_norm / torch.where(u_norm > 0, u_norm, one)
        ratio = torch.where(w_norm > 0, torch.where(u_norm > 0, ratio, one), one)
        return list(torch.unbind(lr * ratio))

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        w = ops.convert_to_tensor(variable)
        v = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, dtype)
        excluded = self.is_excluded(variable)
        if not excluded and self.weight_decay:
            g = g + ops.cast(self.weight_decay, dtype) * w
        if self.classic_momentum:
            scaled_lr = lr if excluded else lr * self._trust(w, g)
            next_v = momentum * v + scaled_lr * g
            update = momentum * next_v + scaled_lr * g if self.nesterov else next_v
            self.assign(v, next_v)
            self.assign_sub(variable, update)
        else:
            next_v = momentum * v + g
            update = momentum * next_v + g if self.nesterov else next_v
            scaled_lr = lr if excluded else lr * self._trust(w, update)
            self.assign(v, next_v)
            self.assign_sub(variable, scaled_lr * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            eta=self.eta,
            nesterov=self.nesterov,
            classic_momentum=self.classic_momentum,
            exclude_max_rank=self.exclude_max_rank,
        )
        return config
