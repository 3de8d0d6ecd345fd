"""Built-in projection heads."""

from contrastive.heads import identity, linear, mlp  # noqa: F401
