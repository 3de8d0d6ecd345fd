"""Built-in optimizers."""

from contrastive.optimizers import keras_optimizers, lars  # noqa: F401
