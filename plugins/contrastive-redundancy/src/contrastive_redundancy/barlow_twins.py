"""Barlow Twins: redundancy reduction (Zbontar et al. 2021)."""

import keras
from keras import ops

from contrastive.typecheck import NonNegativeFloat, PositiveFloat


def cross_correlation(z_a, z_b, epsilon):
    """C_ij = sum_b za_bi zb_bj / N of the batch-normalised views, (d, d).

    Each feature is normalised along the batch to zero mean and unit
    (biased) variance, as the official code's affine-free batch norm:
    (z - mean) / sqrt(var + epsilon).
    """
    z_a = ops.cast(z_a, "float32")
    z_b = ops.cast(z_b, "float32")
    n = ops.cast(ops.shape(z_a)[0], "float32")

    def normalise(z):
        zc = z - ops.mean(z, axis=0, keepdims=True)
        var = ops.mean(zc * zc, axis=0, keepdims=True)
        return zc / ops.sqrt(var + epsilon)

    return ops.matmul(ops.transpose(normalise(z_a)), normalise(z_b)) / n


class BarlowTwins(keras.losses.Loss):
    """Barlow Twins (Zbontar, Jing, Misra, LeCun and Deny, ICML 2021), eq. 1:

        l = sum_i (1 - C_ii)^2 + lambda * sum_i sum_{j != i} C_ij^2

    with C the cross-correlation matrix (d x d) of the two views' projections,
    each feature batch-normalised along the batch (mean 0, variance 1, biased
    variance with `epsilon`, as the official implementation's batch norm
    without affine parameters), summed over the batch and divided by N.

    Computed in float32 under any precision policy.

    Args:
        redundancy_weight: lambda, the weight of the off-diagonal terms (the
            paper: 5e-3).
        epsilon: added to the variance in the normalisation (1e-5, batch
            norm's default).

    Call arguments:
        z_a: projections of the first views, shape `(N, d)`.
        z_b: projections of the second views, shape `(N, d)`.

    Returns:
        The scalar loss of the batch.
    """

    def __init__(
        self,
        redundancy_weight: NonNegativeFloat = 5e-3,
        epsilon: PositiveFloat = 1e-5,
        **kwargs,
    ):
        kwargs.setdefault("name", "barlow_twins")
        super().__init__(**kwargs)
        if not redundancy_weight >= 0:
            raise ValueError(
                f"redundancy_weight: expected a number >= 0, received {redundancy_weight}"
            )
        if not epsilon > 0:
            raise ValueError(f"epsilon: expected a number > 0, received {epsilon}")
        self.redundancy_weight = float(redundancy_weight)
        self.epsilon = float(epsilon)

    def call(self, z_a, z_b):
        c = cross_correlation(z_a, z_b, self.epsilon)
        diagonal = ops.diagonal(c)
        on = ops.sum(ops.square(1.0 - diagonal))
        off = ops.sum(c * c) - ops.sum(ops.square(diagonal))
        return on + self.redundancy_weight * off

    def get_config(self):
        config = super().get_config()
        config.update(redundancy_weight=self.redundancy_weight, epsilon=self.epsilon)
        return config
