"""The non-linear projection head g of SimCLR."""

import keras

from contrastive.registry import register
from contrastive.typecheck import PositiveInt


@register("heads", "mlp")
class MLPHead(keras.layers.Layer):
    """A multi-layer perceptron projection head: z = g(h).

    Hidden layers are Dense (no bias), batch norm, ReLU; the last layer is
    Dense to `output_dim`, computed in float32.

    Args:
        num_layers: Dense layers in all (SimCLR v1: 2, v2: 3).
        hidden_dim: width of the hidden layers; null uses the width of h.
        output_dim: width of z (the paper: 128).
        batch_norm: batch norm after each hidden Dense layer.
    """

    def __init__(
        self,
        num_layers: PositiveInt = 2,
        hidden_dim: PositiveInt | None = None,
        output_dim: PositiveInt = 128,
        batch_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.batch_norm = batch_norm
        self.hidden = []

    def build(self, input_shape):
        width = self.hidden_dim or input_shape[-1]
        for _ in range(self.num_layers - 1):
            dense = keras.layers.Dense(width, use_bias=not self.batch_norm)
            dense.build(input_shape)
            input_shape = (*input_shape[:-1], width)
            norm = None
            if self.batch_norm:
                norm = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
                norm.build(input_shape)
            self.hidden.append((dense, norm))
        self.out = keras.layers.Dense(self.output_dim, dtype="float32")
        self.out.build(input_shape)

    def call(self, h, training=False):
        x = h
        for dense, norm in self.hidden:
            x = dense(x)
            if norm is not None:
                x = norm(x, training=training)
            x = keras.activations.relu(x)
        return self.out(x)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            hidden_dim=self.hidden_dim,
            output_dim=self.output_dim,
            batch_norm=self.batch_norm,
        )
        return config
