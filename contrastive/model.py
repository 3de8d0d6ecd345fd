"""The SimCLR model, kept importable from here; it lives in
`contrastive.methods.simclr` with the other methods."""

from contrastive.methods.base import to_unit_float  # noqa: F401
from contrastive.methods.simclr import SimCLR  # noqa: F401
