"""NT-Logistic, one of the alternatives of the paper's Table 2 and Table 4."""

from typing import Literal

from keras import ops

from contrastive.losses.base import ContrastiveLoss, positive_similarity
from contrastive.registry import register
from contrastive.typecheck import PositiveFloat, PositiveInt


@register("losses", "nt_logistic")
class NTLogistic(ContrastiveLoss):
    """Normalized temperature-scaled logistic loss (the paper's Table 2):

        l_i = -log sigmoid(s(i, p) / tau) - R_k log sigmoid(-s(i, k) / tau)

    over the negatives k of anchor i, R being a sum or a mean.

    Args:
        temperature: tau.
        negative_reduction: `sum` (Table 2's formula) or `mean` over each
            anchor's negatives (balances the one positive term).
        negatives: `all` (2N - 2 negatives per anchor) or `other_view`
            (the N - 1 keys of the other view, as the paper's Table 4).
        chunk_size: anchors per block to bound memory; null: all at once.

    Call arguments and returns: as `nt_xent` (per-anchor losses, `(2N,)`).
    """

    def __init__(
        self,
        temperature: PositiveFloat = 0.2,
        negative_reduction: Literal["sum", "mean"] = "sum",
        negatives: Literal["all", "other_view"] = "all",
        chunk_size: PositiveInt | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "nt_logistic")
        super().__init__(negatives=negatives, chunk_size=chunk_size, **kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, received {temperature}")
        if negative_reduction not in ("sum", "mean"):
            raise ValueError(
                f"negative_reduction: expected one of sum, mean, received {negative_reduction!r}"
            )
        self.temperature = float(temperature)
        self.negative_reduction = negative_reduction
        self.metric_scale = 1.0 / self.temperature

    def anchor_losses(self, sim, pos_mask, neg_mask):
        logits = sim / self.temperature
        positive = ops.softplus(-positive_similarity(logits, pos_mask))
        neg = ops.cast(neg_mask, "float32")
        negative = ops.sum(ops.softplus(logits) * neg, axis=1)
        if self.negative_reduction == "mean":
            negative = negative / ops.maximum(ops.sum(neg, axis=1), 1.0)
        return positive + negative

    def get_config(self):
        config = super().get_config()
        config.update(
            temperature=self.temperature, negative_reduction=self.negative_reduction
        )
        return config
