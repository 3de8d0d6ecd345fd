"""SimCLR (Chen et al. 2020), the built-in method `simclr`."""

import keras
from keras import ops

from contrastive.methods.base import Method
from contrastive.registry import register


@register("methods", "simclr")
class SimCLR(Method):
    """SimCLR as a Keras model trained with `fit`.

    In training, `call` makes two views of every image with `augmenter`
    (independent random parameters per image and view), runs the encoder
    and the head once over all 2N views, so that batch norm sees both views
    as in the paper, and returns the representations and projections. The
    loss compares the two halves of z.

    Args:
        encoder, head, augmenter, num_classes, input_layer: see `Method`.
        loss: a contrastive loss called as `loss(z_a, z_b)`; the
            distribution gives it every replica's keys (`gather`).

    Call arguments:
        x: uint8 (0..255) or float (0..1) images, NHWC, or what
            `input_layer` takes (or an aspect-kept dict, see
            `Method.images`).
        training: make views and update batch-norm statistics.

    Returns:
        `{"h": h, "z": z}` (and `"probe": logits` with a probe); in training
        h, z and the logits have 2N rows: the first views of the N images,
        then their second views.
    """

    def __init__(self, encoder, head, augmenter=None, loss=None, num_classes=None,
                 input_layer=None, **kwargs):
        super().__init__(encoder, head, augmenter, num_classes, input_layer, **kwargs)
        self.contrastive_loss = loss
        self.loss_metrics = {
            name: keras.metrics.Mean(name=name)
            for name in getattr(loss, "metric_names", ())
        }

    def call(self, x, training=False):
        x = self.images(x)
        x = ops.concatenate(self.two_views(x), axis=0) if training else self.view(x)
        h = self.encoder(x, training=training)
        z = self.head(h, training=training)
        outputs = {"h": h, "z": z}
        if self.probe is not None:
            outputs["probe"] = self.probe_logits(h)
        return outputs

    def represent(self, images):
        """Returns h for `images`, in inference mode (no augmentation)."""
        return self.encoder(self.view(self.images(images)), training=False)

    def objective(self, outputs):
        z_a, z_b = _halves(outputs["z"])
        return self.contrastive_loss(z_a, z_b)

    def update_metrics(self, outputs):
        if self.loss_metrics:
            values = self.contrastive_loss.metrics_from(*_halves(outputs["z"]))
            for name, tracker in self.loss_metrics.items():
                tracker.update_state(values[name])

    def connect(self, distribution):
        super().connect(distribution)
        distribution.wire_loss(self.contrastive_loss)

    def get_config(self):
        config = super().get_config()
        config.update(loss=keras.saving.serialize_keras_object(self.contrastive_loss))
        return config


def _halves(z):
    n = ops.shape(z)[0] // 2
    return z[:n], z[n:]
