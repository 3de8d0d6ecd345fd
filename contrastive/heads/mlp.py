"""The non-linear projection head g of SimCLR."""

from typing import Annotated

import keras

from contrastive import torch_speed
from contrastive.heads.linear import LinearUnit
from contrastive.registry import register
from contrastive.typecheck import Range, Width


@register("heads", "mlp")
class MLPHead(keras.layers.Layer):
    """A multi-layer perceptron projection head: z = g(h).

    As in the official SimCLR code (`projection_head` of v1, `ProjectionHead`
    of v2): hidden layers are Dense, batch norm, ReLU, of the width of h by
    default; the last layer is Dense to `output_dim` and batch norm without
    centre, with no bias and no ReLU. Dense kernels start from N(0, 0.01^2);
    batch norm has momentum 0.9 and epsilon 1e-5. Without batch norm the
    hidden Dense layers have a bias and the last one has none (as the official
    code). The last layer is computed in float32 under any precision policy,
    so that z and the loss are float32.

    Args:
        num_layers: Dense layers in all (SimCLR v1: 2, v2: 3).
        hidden_dim: width of the hidden layers; null uses the width of h.
        output_dim: width of z (the paper: 128).
        batch_norm: batch norm after every Dense layer, the last included.
    """

    def __init__(
        self,
        num_layers: Annotated[int, Range(1, 16)] = 2,
        hidden_dim: Width | None = None,
        output_dim: Width = 128,
        batch_norm: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.batch_norm = batch_norm
        self.hidden = []
        self.out = LinearUnit(output_dim, use_bias=False, batch_norm=batch_norm, dtype="float32")

    def build(self, input_shape):
        width = self.hidden_dim or input_shape[-1]
        shape = tuple(input_shape)
        hidden = []
        for _ in range(self.num_layers - 1):
            unit = LinearUnit(
                width, use_bias=True, batch_norm=self.batch_norm, dtype=self.dtype_policy
            )
            unit.build(shape)
            shape = unit.compute_output_shape(shape)
            hidden.append(unit)
        self.hidden = hidden
        self.out.build(shape)

    def call(self, h, training=False):
        call = torch_speed.call_layer
        x = h
        for unit in self.hidden:
            x = keras.activations.relu(call(unit, x, training=training))
        return call(self.out, x, training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def compute_output_spec(self, h, training=False):
        return keras.KerasTensor((*h.shape[:-1], self.output_dim), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            hidden_dim=self.hidden_dim,
            output_dim=self.output_dim,
            batch_norm=self.batch_norm,
        )
        return config
