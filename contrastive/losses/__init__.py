"""Built-in contrastive losses: nt_xent, nt_logistic, margin_triplet, dcl."""

from contrastive.losses import dcl, margin_triplet, nt_logistic, nt_xent  # noqa: F401
