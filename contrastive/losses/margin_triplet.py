"""Margin triplet loss, one of the alternatives of the paper's Table 4."""

from typing import Literal

from keras import ops

from contrastive.losses.base import ContrastiveLoss, positive_similarity
from contrastive.registry import register
from contrastive.typecheck import NonNegativeFloat, PositiveInt


@register("losses", "margin_triplet")
class MarginTriplet(ContrastiveLoss):
    """Margin triplet loss on cosine similarities (the paper's Table 2):

        l_i = R_k max(s(i, k) - s(i, p) + margin, 0)

    over the negatives k of anchor i, R a sum or a mean.

    With `semi_hard=True` (the paper's "sh" rows, after FaceNet) only the
    semi-hard negatives count: those less similar to the anchor than its
    positive (`s(i, k) < s(i, p)`) yet inside the margin (the hinge keeps
    only these). An anchor with no semi-hard negative contributes 0; with
    `mean` the average is over the anchor's semi-hard negatives.

    Args:
        margin: m, in units of cosine similarity.
        semi_hard: semi-hard negative mining.
        negative_reduction: `sum` or `mean` over each anchor's (mined)
            negatives.
        negatives: `all` (2N - 2 negatives per anchor) or `other_view`.
        chunk_size: anchors per block to bound memory; null: all at once.

    Call arguments and returns: as `nt_xent` (per-anchor losses, `(2N,)`).
    The logged entropy is that of the softmax of raw cosine similarities.
    """

    def __init__(
        self,
        margin: NonNegativeFloat = 0.5,
        semi_hard: bool = False,
        negative_reduction: Literal["sum", "mean"] = "sum",
        negatives: Literal["all", "other_view"] = "all",
        chunk_size: PositiveInt | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "margin_triplet")
        super().__init__(negatives=negatives, chunk_size=chunk_size, **kwargs)
        if not margin >= 0:
            raise ValueError(f"margin: expected a number >= 0, received {margin}")
        if negative_reduction not in ("sum", "mean"):
            raise ValueError(
                f"negative_reduction: expected one of sum, mean, received {negative_reduction!r}"
            )
        self.margin = float(margin)
        self.semi_hard = bool(semi_hard)
        self.negative_reduction = negative_reduction

    def anchor_losses(self, sim, pos_mask, neg_mask):
        s_pos = ops.expand_dims(positive_similarity(sim, pos_mask), 1)
        selected = neg_mask
        if self.semi_hard:
            selected = ops.logical_and(selected, sim < ops.stop_gradient(s_pos))
        weights = ops.cast(selected, "float32")
        hinge = ops.relu(sim - s_pos + self.margin)
        total = ops.sum(hinge * weights, axis=1)
        if self.negative_reduction == "mean":
            total = total / ops.maximum(ops.sum(weights, axis=1), 1.0)
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            margin=self.margin,
            semi_hard=self.semi_hard,
            negative_reduction=self.negative_reduction,
        )
        return config
