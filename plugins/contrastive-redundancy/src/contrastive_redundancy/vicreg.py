"""VICReg: variance-invariance-covariance regularisation (Bardes et al. 2022)."""

import keras
from keras import ops

from contrastive.typecheck import NonNegativeFloat, PositiveFloat


def _centered(z):
    z = ops.cast(z, "float32")
    return z - ops.mean(z, axis=0, keepdims=True)


def variance_term(z, gamma, epsilon):
    """v(Z) = mean_j max(0, gamma - sqrt(Var(z_j) + epsilon)), Var unbiased."""
    n = ops.cast(ops.shape(z)[0], "float32")
    zc = _centered(z)
    var = ops.sum(zc * zc, axis=0) / (n - 1.0)
    return ops.mean(ops.relu(gamma - ops.sqrt(var + epsilon)))


def covariance_term(z):
    """c(Z) = sum_{i != j} C(Z)_ij^2 / d, C the unbiased covariance."""
    n = ops.cast(ops.shape(z)[0], "float32")
    d = ops.cast(ops.shape(z)[1], "float32")
    zc = _centered(z)
    cov = ops.matmul(ops.transpose(zc), zc) / (n - 1.0)
    off = ops.sum(cov * cov) - ops.sum(ops.square(ops.diagonal(cov)))
    return off / d


class VICReg(keras.losses.Loss):
    """VICReg (Bardes, Ponce and LeCun, ICLR 2022), equation 6:

        l = lambda * s(Z, Z') + mu * [v(Z) + v(Z')] + nu * [c(Z) + c(Z')]

    - invariance s: the mean squared error between the two views, averaged
      over the N rows and d features (the paper's `F.mse_loss`);
    - variance v: the mean over features of max(0, gamma - S), with S the
      standard deviation along the batch, sqrt(Var + epsilon), Var unbiased;
    - covariance c: the sum of the squared off-diagonal entries of the
      (unbiased) covariance matrix, divided by d.

    Computed in float32 under any precision policy. Needs N >= 2.

    Args:
        invariance_weight: lambda (the paper: 25).
        variance_weight: mu (the paper: 25).
        covariance_weight: nu (the paper: 1).
        gamma: the target standard deviation (the paper: 1).
        epsilon: added to the variance before the square root (1e-4).

    Call arguments:
        z_a: projections of the first views, shape `(N, d)`.
        z_b: projections of the second views, shape `(N, d)`.

    Returns:
        The scalar loss of the batch.
    """

    def __init__(
        self,
        invariance_weight: NonNegativeFloat = 25.0,
        variance_weight: NonNegativeFloat = 25.0,
        covariance_weight: NonNegativeFloat = 1.0,
        gamma: PositiveFloat = 1.0,
        epsilon: PositiveFloat = 1e-4,
        **kwargs,
    ):
        kwargs.setdefault("name", "vicreg")
        super().__init__(**kwargs)
        for key, value in (
            ("invariance_weight", invariance_weight),
            ("variance_weight", variance_weight),
            ("covariance_weight", covariance_weight),
        ):
            if not value >= 0:
                raise ValueError(f"{key}: expected a number >= 0, received {value}")
        for key, value in (("gamma", gamma), ("epsilon", epsilon)):
            if not value > 0:
                raise ValueError(f"{key}: expected a number > 0, received {value}")
        self.invariance_weight = float(invariance_weight)
        self.variance_weight = float(variance_weight)
        self.covariance_weight = float(covariance_weight)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)

    def call(self, z_a, z_b):
        z_a = ops.cast(z_a, "float32")
        z_b = ops.cast(z_b, "float32")
        invariance = ops.mean(ops.square(z_a - z_b))
        variance = variance_term(z_a, self.gamma, self.epsilon) + variance_term(
            z_b, self.gamma, self.epsilon
        )
        covariance = covariance_term(z_a) + covariance_term(z_b)
        return (
            self.invariance_weight * invariance
            + self.variance_weight * variance
            + self.covariance_weight * covariance
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            invariance_weight=self.invariance_weight,
            variance_weight=self.variance_weight,
            covariance_weight=self.covariance_weight,
            gamma=self.gamma,
            epsilon=self.epsilon,
        )
        return config
