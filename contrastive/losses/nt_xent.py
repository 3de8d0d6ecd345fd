"""NT-Xent, the normalized temperature-scaled cross-entropy of SimCLR."""

import keras
from keras import ops

from contrastive.registry import register
from contrastive.typecheck import PositiveFloat


@register("losses", "nt_xent")
class NTXent(keras.losses.Loss):
    """NT-Xent (the paper's equation 1), averaged over all 2N anchors.

    Each of the 2N views is an anchor; its positive is the other view of the
    same image and its 2N - 2 negatives are the views of the other images.
    Similarity is cosine similarity divided by `temperature`.

    Args:
        temperature: tau; the paper uses 0.1 on ImageNet, 0.5 on CIFAR-10.

    Call arguments:
        z_a: projections of the first views, shape `(N, d)`.
        z_b: projections of the second views, shape `(N, d)`.
    """

    def __init__(self, temperature: PositiveFloat = 0.1, name="nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature: expected a number > 0, received {temperature}")
        self.temperature = float(temperature)

    def call(self, z_a, z_b):
        z = ops.concatenate([z_a, z_b], axis=0)
        z = z / ops.maximum(ops.norm(z, axis=1, keepdims=True), 1e-12)
        n2 = ops.shape(z)[0]
        n = n2 // 2
        logits = ops.matmul(z, ops.transpose(z)) / self.temperature
        eye = ops.eye(n2, dtype="bool")
        # Self-similarity leaves the softmax through the mask, with no large
        # constant that could overflow in low precision.
        logits = ops.where(eye, ops.full_like(logits, float("-inf")), logits)
        idx = ops.arange(n2)
        positives = ops.where(idx < n, idx + n, idx - n)
        return -ops.take_along_axis(
            ops.log_softmax(logits, axis=1), ops.expand_dims(positives, 1), axis=1
        )[:, 0]

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config
