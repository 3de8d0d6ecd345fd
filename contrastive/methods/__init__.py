"""Built-in training methods: `simclr`. Others come from plugins (entry-point
group `contrastive.methods`); `contrastive.methods.base.Method` is the
interface they implement."""

from contrastive.methods.base import Method, to_unit_float  # noqa: F401
from contrastive.methods.simclr import SimCLR  # noqa: F401
