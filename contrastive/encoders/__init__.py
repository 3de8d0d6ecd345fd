"""Built-in encoders."""

from contrastive.encoders import small_cnn  # noqa: F401
