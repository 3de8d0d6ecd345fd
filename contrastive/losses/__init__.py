"""Built-in contrastive losses."""

from contrastive.losses import nt_xent  # noqa: F401
