"""contrastive: SimCLR as a Keras 3 framework of pluggable components."""

__version__ = "0.1.0"

from contrastive.errors import ComponentError, ContrastiveError, SpecError  # noqa: E402
from contrastive.registry import KINDS, build, get_registry, register  # noqa: E402

__all__ = [
    "KINDS",
    "ComponentError",
    "ContrastiveError",
    "SpecError",
    "build",
    "get_registry",
    "register",
    "__version__",
]
