"""Built-in projection heads."""

from contrastive.heads import mlp  # noqa: F401
