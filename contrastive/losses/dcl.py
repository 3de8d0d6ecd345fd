"""DCL, the decoupled contrastive loss (Yeh et al. 2022)."""

from typing import Literal


from contrastive.losses.base import ContrastiveLoss, masked_logsumexp, positive_similarity
from contrastive.registry import register
from contrastive.typecheck import PositiveFloat, PositiveInt


@register("losses", "dcl")
class DCL(ContrastiveLoss):
    """Decoupled contrastive loss: NT-Xent with the positive removed from
    the denominator,

        l_i = -s(i, p) / tau + log sum_{k negative} exp(s(i, k) / tau)

    Args:
        temperature: tau.
        negatives: `all` (2N - 2 negatives per anchor) or `other_view`.
        chunk_size: anchors per block to bound memory; null: all at once.

    Call arguments and returns: as `nt_xent` (per-anchor losses, `(2N,)`).
    """

    def __init__(
        self,
        temperature: PositiveFloat = 0.1,
        negatives: Literal["all", "other_view"] = "all",
        chunk_size: PositiveInt | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "dcl")
        super().__init__(negatives=negatives, chunk_size=chunk_size, **kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, received {temperature}")
        self.temperature = float(temperature)
        self.metric_scale = 1.0 / self.temperature

    def anchor_losses(self, sim, pos_mask, neg_mask):
        logits = sim / self.temperature
        return masked_logsumexp(logits, neg_mask) - positive_similarity(logits, pos_mask)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config
