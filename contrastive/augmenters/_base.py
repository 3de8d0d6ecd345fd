"""Shared parts of the augmenters: input checking, random draws, base class.

Value range: every augmenter accepts images of shape `(B, H, W, C)` (NHWC) as
uint8 in 0..255 (divided by 255) or floats in [0, 1] (float16, bfloat16,
float32, float64: cast to float32), and returns float32 in [0, 1] of the same
batch size and channels. Float inputs are not range-checked (that would need a
device-to-host sync inside the compiled step); values outside [0, 1] are
clipped by the first operation that clips.
"""

import math

import keras
from keras import ops

from contrastive import torch_speed

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def to_float_images(images, name, channels=None):
    """Checks an image batch and returns it as float32 in [0, 1].

    Args:
        images: a `(B, H, W, C)` tensor or array, uint8 or floating.
        name: the augmenter's name, for messages.
        channels: the required channel count, or None for any.

    Raises:
        ValueError: wrong rank, channel count or dtype; the message says what
            was expected and what was received.
    """
    if not hasattr(images, "shape") or not hasattr(images, "dtype"):
        images = ops.convert_to_tensor(images)
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ValueError(
            f"{name}: expected a batch of images of rank 4 (B, H, W, C), "
            f"received shape {shape} (rank {len(shape)})"
        )
    if channels is not None and shape[-1] != channels:
        raise ValueError(
            f"{name}: expected {channels} channels (NHWC, channels last), "
            f"received shape {shape} with {shape[-1]} channels"
        )
    if shape[-1] is None or (shape[1] is None or shape[2] is None):
        raise ValueError(
            f"{name}: expected static height, width and channels, received shape {shape}"
        )
    dtype = keras.backend.standardize_dtype(images.dtype)
    if dtype == "uint8":
        return ops.cast(images, "float32") / 255.0
    if dtype in _FLOAT_DTYPES:
        return ops.cast(images, "float32")
    raise ValueError(
        f"{name}: expected uint8 images in 0..255 or float images in [0, 1], "
        f"received dtype {dtype}"
    )


def per_image(values):
    """Reshapes per-image values `(B,)` to broadcast against `(B, H, W, C)`."""
    return ops.reshape(values, (-1, 1, 1, 1))


def uniform(seed, batch, low, high):
    """One draw of shape `(B,)`, uniform in [low, high)."""
    return torch_speed.uniform((batch,), minval=low, maxval=high, seed=seed)


def bernoulli(seed, batch, p):
    """A boolean mask of shape `(B,)`, True with probability `p`."""
    return torch_speed.uniform((batch,), seed=seed) < p


def log_uniform(seed, shape, low, high):
    return ops.exp(
        torch_speed.uniform(shape, minval=math.log(low), maxval=math.log(high), seed=seed)
    )


def take_rows(params, start, count):
    """Rows `start .. start + count - 1` of every tensor in `params` (per-image
    parameters: a tensor, or tuples, lists and dicts of them; None kept)."""
    if params is None:
        return None
    if isinstance(params, dict):
        return {key: take_rows(value, start, count) for key, value in params.items()}
    if isinstance(params, (list, tuple)):
        return type(params)(take_rows(value, start, count) for value in params)
    if isinstance(start, int):
        return params[start:start + count]
    return ops.take(params, start + ops.arange(count), axis=0)


def connect_replicas(augmenter, replica_rows):
    """Makes `augmenter` and every augmenter inside it draw through
    `replica_rows` (`Distribution.replica_rows`; None: draws for its own
    batch), see `Augmenter.sample_rows`."""
    if not hasattr(augmenter, "_flatten_layers"):  # not a Keras layer
        return
    for layer in augmenter._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, Augmenter):
            # In the instance dict: a bound method of the distribution is no
            # state for Keras to track or save.
            layer.__dict__["_replica_rows"] = replica_rows


def check_pair(name, pair, low=None, high=None, positive=False):
    """Validates a `(min, max)` pair; returns it as a tuple of floats."""
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError(f"{name}: expected a pair [min, max], received {pair!r}")
    a, b = float(pair[0]), float(pair[1])
    if a > b:
        raise ValueError(f"{name}: expected min <= max, received [{a:g}, {b:g}]")
    if positive and a <= 0:
        raise ValueError(f"{name}: expected values > 0, received [{a:g}, {b:g}]")
    if low is not None and a < low:
        raise ValueError(f"{name}: expected values >= {low:g}, received [{a:g}, {b:g}]")
    if high is not None and b > high:
        raise ValueError(f"{name}: expected values <= {high:g}, received [{a:g}, {b:g}]")
    return (a, b)


class Augmenter(keras.layers.Layer):
    """Base class of the built-in augmenters.

    Subclasses implement `augment(images)` on float32 `(B, H, W, C)` images in
    [0, 1], drawing per-image parameters from `self.seed_generator`; the
    built-in ones split it into `sample(batch, shape)` (the random draws,
    which depend only on the batch size and the image shape) and
    `apply(images, params)` (the image ops, no random draws), so that a
    pipeline can draw everything first and run the image ops as one
    stretch (one compiled graph on torch, see `SimCLRAugment`).

    Args:
        seed: seeds the layer's `keras.random.SeedGenerator`; null draws one.
    """

    channels = None  # the required channel count, or None for any

    def __init__(self, seed=None, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False
        self.built = True  # no weights; the seed state is created above

    def call(self, images, training=True):
        images = to_float_images(images, self.name, self.channels)
        if not training:
            return images
        return self.augment(images)

    def augment(self, images):
        if type(self).sample is Augmenter.sample and type(self).apply is Augmenter.apply:
            raise NotImplementedError
        return self.apply(images, self.sample_rows(self, self.batch_size(images),
                                                   tuple(images.shape)))

    def sample_rows(self, stage, batch, shape, *per_image):
        """`stage.sample(batch, shape, *per_image)` for this replica's rows.

        Where each replica runs the step on its own rows of the global batch
        (torch DDP, tf.distribute: `Distribution.replica_rows`), every
        replica draws the parameters of the whole global batch from the
        same seed state and keeps its own rows, so that no two replicas
        repeat each other's draws and N replicas draw exactly what one
        device draws for the same global batch. Elsewhere, the draws of
        `batch` images.

        Args:
            stage: the augmenter whose `sample` draws (`self` or a stage).
            batch: this replica's batch size.
            shape: this replica's image shape (NHWC).
            *per_image: more per-image tensors `sample` takes (`(B, ...)`,
                such as the images' sizes), tiled over the replicas.
        """
        rows = self.__dict__.get("_replica_rows")
        replicas, index = (1, 0) if rows is None else (rows() or (1, 0))
        if replicas == 1:
            return stage.sample(batch, shape, *per_image)
        per_image = [ops.tile(value, (replicas,) + (1,) * (len(value.shape) - 1))
                     for value in per_image]
        whole = (None if shape[0] is None else shape[0] * replicas, *shape[1:])
        return take_rows(stage.sample(batch * replicas, whole, *per_image),
                         index * batch, batch)

    def sample(self, batch, shape):
        """The random parameters of one call on `batch` images of `shape`
        (NHWC); None when there are none."""

    def apply(self, images, params):
        """The image ops given `sample`'s parameters."""
        raise NotImplementedError

    def batch_size(self, images):
        return ops.shape(images)[0]

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config
