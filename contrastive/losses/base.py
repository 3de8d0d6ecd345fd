"""The machinery shared by the contrastive losses: anchors, keys, masks.

Every loss here is a `keras.losses.Loss` called as `loss(z_a, z_b)` with the
two views' projections, each `(n, d)`, and returns one loss per local anchor,
shape `(2n,)`, which Keras' reduction averages (the paper averages over all
2N anchors).

Anchors and keys
----------------
The 2n local rows `[z_a; z_b]` are the anchors. The keys (the candidates an
anchor is compared with) are `[gather(z_a); gather(z_b)]`, 2m rows, where
`gather` maps the local `(n, d)` rows of one view to the rows of every
replica, `(m, d)` with `m = n * replicas`, in replica order. The local rows
sit at `replica_offset` (an int, or a callable returning a scalar tensor)
inside each gathered view. With the defaults (`gather=None`, identity;
`replica_offset=0`) the keys are the anchors themselves. The distribution
layer sets both attributes on the loss object; the loss needs no other
change:

    loss.gather = lambda z: all_gather_with_gradient(z)   # (n, d) -> (m, d)
    loss.replica_offset = lambda: replica_id * n

For anchor `i` of view a, its positive is key `m + offset + i` (the same
image's view b) and its own key `offset + i` is excluded; symmetrically for
view b. Every other key is a negative (2m - 2 of them, or m - 1 of the other
view only with `negatives="other_view"`).

Precision and memory
--------------------
Projections are cast to float32 and l2-normalised before any similarity, so
logits are float32 under mixed precision. Masks are applied with `where`:
no large constants (the official code's 1e9 becomes infinite in float16) and
no infinities, so neither values nor gradients overflow. With `chunk_size`,
anchors are processed in blocks of that many rows, each block under
`keras.remat`, so the largest similarity block held is `(chunk_size, 2m)`
in the forward and the backward pass (needs a static batch size; otherwise
the whole matrix is computed at once).
"""

from typing import Literal

import keras
from keras import ops

from contrastive.typecheck import PositiveInt


def l2_normalize(z):
    """Rows of `z` (cast to float32) divided by their l2 norm."""
    z = ops.cast(z, "float32")
    return z / ops.maximum(ops.norm(z, axis=1, keepdims=True), 1e-12)


def masked_logsumexp(x, mask):
    """log(sum(exp(x)) over `mask`) per row, with no infinities anywhere.

    The row maximum is taken over masked entries only, and masked-out
    entries are zeroed before `exp`, so that neither the forward value nor
    the gradient meets `inf` (the `where` gradient of an infinite branch is
    NaN).
    """
    floor = ops.min(x, axis=1, keepdims=True)
    top = ops.stop_gradient(ops.max(ops.where(mask, x, floor), axis=1, keepdims=True))
    shifted = ops.where(mask, x - top, ops.zeros_like(x))
    total = ops.sum(ops.where(mask, ops.exp(shifted), ops.zeros_like(x)), axis=1)
    return ops.log(total) + top[:, 0]


class ContrastiveLoss(keras.losses.Loss):
    """Base class: builds anchors, keys and masks; subclasses score them.

    Subclasses implement `anchor_losses(sim, pos_mask, neg_mask)` returning
    one loss per row of `sim` (cosine similarities of a block of anchors to
    all keys), and set `metric_scale` (the factor turning similarities into
    the logits whose softmax the logged entropy describes).

    Args:
        negatives: `all` (2m - 2 negatives per anchor: both views of every
            other image, the paper's NT-Xent) or `other_view` (only the
            other view's m - 1 keys, as the paper's Table 4 comparison).
        chunk_size: process anchors in blocks of this many rows to bound
            memory; null computes the whole `(2n, 2m)` matrix at once.

    Attributes:
        gather: callable `(n, d) -> (m, d)` giving every replica's rows of
            one view (with gradient); None for a single replica.
        replica_offset: where the local rows sit in a gathered view: an int
            or a callable returning a scalar tensor.
        metric_names: names of the values `metrics_from` returns.
    """

    metric_names = ("contrastive_acc", "contrastive_entropy")
    metric_scale = 1.0

    def __init__(
        self,
        negatives: Literal["all", "other_view"] = "all",
        chunk_size: PositiveInt | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if negatives not in ("all", "other_view"):
            raise ValueError(
                f"negatives: expected one of all, other_view, received {negatives!r}"
            )
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk_size: expected an integer >= 1, received {chunk_size}")
        self.negatives = negatives
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.gather = None
        self.replica_offset = 0

    # Subclass hooks -----------------------------------------------------

    def anchor_losses(self, sim, pos_mask, neg_mask):
        raise NotImplementedError

    # Shared machinery ----------------------------------------------------

    def _offset(self):
        offset = self.replica_offset
        return offset() if callable(offset) else offset

    def _layout(self, z_a, z_b):
        """Anchors, keys and, per anchor, the index of its positive and of
        itself among the keys, and its view (0 or 1)."""
        z_a = l2_normalize(z_a)
        z_b = l2_normalize(z_b)
        gather = self.gather
        k_a = gather(z_a) if gather is not None else z_a
        k_b = gather(z_b) if gather is not None else z_b
        n = ops.shape(z_a)[0]
        m = ops.shape(k_a)[0]
        anchors = ops.concatenate([z_a, z_b], axis=0)
        keys = ops.concatenate([k_a, k_b], axis=0)
        idx = ops.arange(2 * n, dtype="int32")
        view = ops.cast(idx >= n, "int32")
        row = idx - view * n + ops.cast(self._offset(), "int32")
        self_idx = view * m + row
        pos_idx = (1 - view) * m + row
        return anchors, keys, self_idx, pos_idx, view, m

    def _masks(self, keys_count, m, self_idx, pos_idx, view):
        col = ops.expand_dims(ops.arange(keys_count, dtype="int32"), 0)
        pos_mask = col == ops.expand_dims(pos_idx, 1)
        if self.negatives == "all":
            candidates = col != ops.expand_dims(self_idx, 1)
        else:
            key_view = ops.cast(col >= m, "int32")
            candidates = key_view != ops.expand_dims(view, 1)
        neg_mask = ops.logical_and(candidates, ops.logical_not(pos_mask))
        return pos_mask, neg_mask

    def _blocks(self, fn, anchors, keys_t, self_idx, pos_idx, view, remat):
        """Applies `fn(anchors, keys_t, self_idx, pos_idx, view)` by row
        blocks (each under `keras.remat` when `remat`). Everything
        differentiable is an explicit argument of the remat'd function, since
        TensorFlow's `recompute_grad` differentiates only those."""
        total = anchors.shape[0]
        chunk = self.chunk_size
        if chunk is None or total is None or total <= chunk:
            return fn(anchors, keys_t, self_idx, pos_idx, view)
        outputs = []
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)

            def piece(a, k_t, _start=start, _stop=stop):
                # Integer indices are captured, not arguments: they have no
                # gradient (TensorFlow's recompute_grad would watch them).
                return fn(
                    a, k_t, self_idx[_start:_stop], pos_idx[_start:_stop], view[_start:_stop]
                )

            outputs.append((keras.remat(piece) if remat else piece)(anchors[start:stop], keys_t))
        if isinstance(outputs[0], tuple):
            return tuple(ops.concatenate(parts, axis=0) for parts in zip(*outputs))
        return ops.concatenate(outputs, axis=0)

    def call(self, z_a, z_b):
        anchors, keys, self_idx, pos_idx, view, m = self._layout(z_a, z_b)
        keys_t = ops.transpose(keys)
        keys_count = ops.shape(keys)[0]

        def block(a, k_t, s_idx, p_idx, v):
            sim = ops.matmul(a, k_t)
            pos_mask, neg_mask = self._masks(keys_count, m, s_idx, p_idx, v)
            return self.anchor_losses(sim, pos_mask, neg_mask)

        return self._blocks(block, anchors, keys_t, self_idx, pos_idx, view, remat=True)

    def metrics_from(self, z_a, z_b):
        """The values the official code logs, as scalar tensors.

        Returns:
            `{"contrastive_acc": ..., "contrastive_entropy": ...}`: the
            fraction of local anchors whose positive has a higher similarity
            than every negative (ranked first among the candidates), and the
            mean entropy of the softmax of `metric_scale * similarity` over
            each anchor's candidates (positive and negatives). No gradient.
        """
        z_a = ops.stop_gradient(ops.convert_to_tensor(z_a))
        z_b = ops.stop_gradient(ops.convert_to_tensor(z_b))
        anchors, keys, self_idx, pos_idx, view, m = self._layout(z_a, z_b)
        keys_t = ops.transpose(keys)
        keys_count = ops.shape(keys)[0]
        scale = float(self.metric_scale)

        def block(a, k_t, s_idx, p_idx, v):
            sim = ops.matmul(a, k_t)
            pos_mask, neg_mask = self._masks(keys_count, m, s_idx, p_idx, v)
            s_pos = ops.sum(ops.where(pos_mask, sim, ops.zeros_like(sim)), axis=1)
            # Cosine similarities lie in [-1, 1]: -2 is below any of them. A
            # scalar, not `full_like`: on torch that reads its fill value
            # back from the device (a host sync).
            s_neg = ops.max(ops.where(neg_mask, sim, -2.0), axis=1)
            correct = ops.cast(s_pos > s_neg, "float32")
            cand = ops.logical_or(pos_mask, neg_mask)
            logits = sim * scale
            log_p = logits - ops.expand_dims(masked_logsumexp(logits, cand), 1)
            log_p = ops.where(cand, log_p, ops.zeros_like(log_p))
            entropy = -ops.sum(ops.exp(log_p) * log_p * ops.cast(cand, "float32"), axis=1)
            return correct, entropy

        correct, entropy = self._blocks(block, anchors, keys_t, self_idx, pos_idx, view, remat=False)
        return {
            "contrastive_acc": ops.mean(correct),
            "contrastive_entropy": ops.mean(entropy),
        }

    def get_config(self):
        config = super().get_config()
        config.update(negatives=self.negatives, chunk_size=self.chunk_size)
        return config


def positive_similarity(sim, pos_mask):
    """The similarity of each anchor to its positive, shape `(rows,)`."""
    return ops.sum(ops.where(pos_mask, sim, ops.zeros_like(sim)), axis=1)
