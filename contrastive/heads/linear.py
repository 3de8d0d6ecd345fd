"""The linear projection head, and the Dense + batch-norm unit of all heads.

The unit follows the official SimCLR code's `LinearLayer`
(`google-research/simclr`, `tf2/model.py`): a Dense layer with kernel
initialiser N(0, 0.01^2), then optionally batch norm (momentum 0.9, epsilon
1e-5) whose centre (beta) is on only where the layer would have a bias; the
Dense layer itself has a bias only without batch norm.
"""

import keras

from contrastive import torch_speed
from contrastive.registry import register
from contrastive.typecheck import Width

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5
KERNEL_STDDEV = 0.01


@keras.saving.register_keras_serializable(package="contrastive")
class LinearUnit(keras.layers.Layer):
    """Dense, then batch norm if `batch_norm`; no activation.

    Args:
        units: output width.
        use_bias: a learnt offset: the Dense bias without batch norm, the
            batch-norm centre with it.
        batch_norm: batch norm after the Dense layer.
    """

    def __init__(self, units, use_bias=True, batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.use_bias = use_bias
        self.batch_norm = batch_norm
        policy = self.dtype_policy
        self.dense = keras.layers.Dense(
            units,
            use_bias=use_bias and not batch_norm,
            kernel_initializer=keras.initializers.RandomNormal(stddev=KERNEL_STDDEV),
            dtype=policy,
        )
        self.norm = None
        if batch_norm:
            self.norm = torch_speed.BatchNormalization(
                momentum=BATCH_NORM_MOMENTUM,
                epsilon=BATCH_NORM_EPSILON,
                center=use_bias,
                dtype=policy,
            )

    def build(self, input_shape):
        self.dense.build(input_shape)
        if self.norm is not None:
            self.norm.build(self.dense.compute_output_shape(input_shape))

    def call(self, x, training=False):
        x = torch_speed.call_layer(self.dense, x)
        if self.norm is not None:
            x = torch_speed.call_layer(self.norm, x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, use_bias=self.use_bias, batch_norm=self.batch_norm)
        return config


@register("heads", "linear")
class LinearHead(keras.layers.Layer):
    """A linear projection z = W h (the paper's "linear" head of Figure 8).

    As in the official code: no bias, and batch norm without centre on z.
    The projection is computed in float32 under any precision policy.

    Args:
        output_dim: width of z.
        batch_norm: batch norm on z.
    """

    def __init__(self, output_dim: Width = 128, batch_norm: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = output_dim
        self.batch_norm = batch_norm
        self.out = LinearUnit(output_dim, use_bias=False, batch_norm=batch_norm, dtype="float32")

    def build(self, input_shape):
        self.out.build(input_shape)

    def call(self, h, training=False):
        return self.out(h, training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def compute_output_spec(self, h, training=False):
        return keras.KerasTensor((*h.shape[:-1], self.output_dim), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(output_dim=self.output_dim, batch_norm=self.batch_norm)
        return config
