"""Redundancy-reduction losses for contrastive: VICReg and Barlow Twins.

Both are non-contrastive successors of SimCLR: they need no negatives, and
instead keep the embedding from collapsing by regularising the statistics of
the batch. Installed, they are registered through the entry-point group
`contrastive.losses` as `vicreg` and `barlow_twins`:

```yaml
loss: {name: vicreg, invariance_weight: 25.0}
```

Nothing here is imported by discovery; a spec that names one of the losses
imports its module.
"""

__version__ = "0.1.0"

__all__ = ["BarlowTwins", "VICReg"]


def __getattr__(name):
    # Lazy, so that importing the package does not import Keras.
    if name == "VICReg":
        from contrastive_redundancy.vicreg import VICReg

        return VICReg
    if name == "BarlowTwins":
        from contrastive_redundancy.barlow_twins import BarlowTwins

        return BarlowTwins
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
