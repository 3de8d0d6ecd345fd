"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR."""

from typing import Literal

from keras import ops

from contrastive.losses.base import ContrastiveLoss, masked_logsumexp, positive_similarity
from contrastive.registry import register
from contrastive.typecheck import PositiveFloat, PositiveInt


@register("losses", "nt_xent")
class NTXent(ContrastiveLoss):
    """NT-Xent (the paper's equation 1), averaged over all 2N anchors.

    Each of the 2N views is an anchor; its positive is the other view of the
    same image and its 2N - 2 negatives are the views of the other images:

        l_i = -s(i, p) / tau + log sum_{k != i} exp(s(i, k) / tau)

    with s the cosine similarity. See `contrastive.losses.base` for the
    key set (`gather`, `replica_offset`), precision and `chunk_size`.

    Args:
        temperature: tau; the paper uses 0.1 on ImageNet, 0.5 on CIFAR-10.
        negatives: `all` (the paper) or `other_view`.
        chunk_size: anchors per block to bound memory; null: all at once.

    Call arguments:
        z_a: projections of the first views, shape `(N, d)`.
        z_b: projections of the second views, shape `(N, d)`.

    Returns:
        Per-anchor losses, shape `(2N,)` (Keras' reduction averages them).
    """

    def __init__(
        self,
        temperature: PositiveFloat = 0.1,
        negatives: Literal["all", "other_view"] = "all",
        chunk_size: PositiveInt | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "nt_xent")
        super().__init__(negatives=negatives, chunk_size=chunk_size, **kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, received {temperature}")
        self.temperature = float(temperature)
        self.metric_scale = 1.0 / self.temperature

    def anchor_losses(self, sim, pos_mask, neg_mask):
        logits = sim / self.temperature
        candidates = ops.logical_or(pos_mask, neg_mask)
        return masked_logsumexp(logits, candidates) - positive_similarity(logits, pos_mask)

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config
