"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent"), the method `byol`."""

import math

import keras
from keras import ops

from contrastive.methods import Method
from contrastive.typecheck import PositiveInt, Probability
from contrastive_momentum.momentum import clone, follow, freeze


class NormalizedMSE(keras.losses.Loss):
    """BYOL's loss between a prediction and a target projection:
    `||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z)`, one value per row (Keras'
    reduction averages them, and scales for tf.distribute's replicas).
    Called as `loss(z, p)`."""

    def __init__(self, **kwargs):
        kwargs.setdefault("name", "normalized_mse")
        super().__init__(**kwargs)

    def call(self, z, p):
        z = ops.cast(z, "float32")
        p = ops.cast(p, "float32")
        z = z / ops.maximum(ops.norm(z, axis=1, keepdims=True), 1e-12)
        p = p / ops.maximum(ops.norm(p, axis=1, keepdims=True), 1e-12)
        return 2.0 - 2.0 * ops.sum(z * p, axis=1)


class Predictor(keras.layers.Layer):
    """BYOL's predictor q: Dense to `hidden_dim`, batch norm, ReLU, Dense
    back to the projection's width (learned from the input at build time)."""

    def __init__(self, hidden_dim=512, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.hidden = keras.layers.Dense(self.hidden_dim, use_bias=False, name="hidden")
        self.norm = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="norm")
        self.out = None

    def build(self, input_shape):
        self.out = keras.layers.Dense(input_shape[-1], dtype="float32", name="out")
        self.hidden.build(input_shape)
        self.norm.build((*input_shape[:-1], self.hidden_dim))
        self.out.build((*input_shape[:-1], self.hidden_dim))

    def call(self, z, training=False):
        x = keras.activations.relu(self.norm(self.hidden(z), training=training))
        return self.out(x)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}


class BYOL(Method):
    """BYOL: an online network (encoder, projector = the spec's head, and a
    predictor) learns to predict a target network's projection of the other
    view; the target (encoder and projector) follows the online one by
    momentum and never receives a gradient. No negatives.

    The loss is the normalized MSE of the online prediction of each view
    against the target projection of the other view, summed over the two
    directions. The target's momentum rises from `momentum` to 1 along a
    cosine over the run's `total_steps` (the paper's schedule); the step
    count is a Keras variable, so a resumed run continues the schedule.

    Differences from the paper's code: the target follows the online weights
    at the start of the next step rather than the end of this one (the same
    sequence of weights).

    Args:
        encoder, head, augmenter, num_classes, input_layer: see `Method`.
        total_steps: the run's steps (given by contrastive at run time).
        predictor_hidden_dim: the predictor's hidden width (4,096 in the
            paper for ResNet-50).
        momentum: the base momentum tau (0.996 in the paper).
    """

    probe_views = 2

    def __init__(self, encoder, head, augmenter=None, num_classes=None, input_layer=None,
                 total_steps=None, predictor_hidden_dim: PositiveInt = 512,
                 momentum: Probability = 0.996, **kwargs):
        super().__init__(encoder, head, augmenter, num_classes, input_layer, **kwargs)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.predictor_hidden_dim = int(predictor_hidden_dim)
        self.momentum = float(momentum)
        self.predictor = Predictor(self.predictor_hidden_dim, name="predictor")
        self.target_encoder = clone(encoder, "target_encoder")
        self.target_head = clone(head, "target_head")
        self.byol_loss = NormalizedMSE()
        self.steps = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                     name="steps", aggregation="only_first_replica")

    def build(self, input_shape):
        def forward(x):
            images = self.view(self.images(x))
            self.predictor(self.head(self.encoder(images)))
            return self.target_head(self.target_encoder(images))

        self.symbolic(forward, input_shape)
        freeze([self.target_encoder, self.target_head])

    def call(self, x, training=False):
        images = self.images(x)
        if not training:
            h = self.encoder(self.view(images), training=False)
            return self._with_probe({"h": h}, h)
        views = ops.concatenate(self.two_views(images), axis=0)
        h = self.encoder(views, training=True)
        p = self.predictor(self.head(h, training=True), training=True)
        follow([self.target_encoder, self.target_head], [self.encoder, self.head],
               self.target_momentum(), self.steps)
        self.steps.assign_add(1.0)
        z = ops.stop_gradient(
            self.target_head(self.target_encoder(views, training=True), training=True))
        return self._with_probe({"h": h, "p": p, "z": z}, h)

    def target_momentum(self):
        """tau at the current step: 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2."""
        if not self.total_steps:
            return ops.convert_to_tensor(self.momentum, "float32")
        progress = ops.minimum(self.steps / float(self.total_steps), 1.0)
        return 1.0 - (1.0 - self.momentum) * (ops.cos(math.pi * progress) + 1.0) / 2.0

    def _with_probe(self, outputs, h):
        if self.probe is not None:
            outputs["probe"] = self.probe_logits(h)
        return outputs

    def objective(self, outputs):
        n = ops.shape(outputs["p"])[0] // 2
        p, z = outputs["p"], outputs["z"]
        return self.byol_loss(z[n:], p[:n]) + self.byol_loss(z[:n], p[n:])

    def get_config(self):
        config = super().get_config()
        config.update(total_steps=self.total_steps,
                      predictor_hidden_dim=self.predictor_hidden_dim, momentum=self.momentum)
        return config
