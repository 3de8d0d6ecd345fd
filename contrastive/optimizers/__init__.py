"""Built-in optimizers."""

from contrastive.optimizers import keras_optimizers  # noqa: F401
