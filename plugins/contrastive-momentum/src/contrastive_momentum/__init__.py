"""contrastive-momentum: MoCo v2 and BYOL for contrastive, written against
its public method interface (`contrastive.methods.Method`) alone.

Registered by the entry points `moco_v2` and `byol` of the group
`contrastive.methods` (see pyproject.toml); contrastive imports a module
the first time a spec's `method` names it.
"""

__version__ = "0.1.0"
