"""The interface every training method implements (`Method`).

A method is a Keras model trained by `fit`. contrastive builds it from the
spec's `method` section with the already built encoder, head, augmenter and
loss (each passed only where the method's constructor asks for it), adapts
it to the distribution (`connect`), compiles it, fits it, checkpoints and
resumes it (every variable it creates is a Keras variable: weights are saved,
random-generator states too), and evaluates and saves its `encoder` (and,
for SimCLR v2's fine-tuning start, its `head`).

What a method writes:

- `call(x, training)`: `x` is what `fit` gives (uint8 images, or what the
  `input_layer` turns into images); returns a dict of tensors, `"h"` among
  them. State a step changes (a momentum encoder, a queue) is assigned
  here, so that every backend's compiled step carries it.
- `objective(outputs)`: the method's loss, a float32 scalar, a pure
  function of `call`'s outputs (the distributed check differentiates it).
- Optionally `update_metrics(outputs)`, and `connect(distribution)` when
  the method gathers across replicas (call `super().connect` first).

`Method` supplies the rest: the images from `x` (`images`), two augmented
views (`two_views`), one deterministic view for inference (`view`), the
online linear probe on stop-gradient h, `gather`
(every replica's rows), `compute_loss` and the config of the parts.
"""

import keras
from keras import ops

from contrastive.augmenters._base import connect_replicas
from contrastive.torch_step import TracedTraining


def to_unit_float(images):
    """Casts images to float32 in [0, 1]: uint8 is divided by 255."""
    if "int" in str(images.dtype):
        return ops.cast(images, "float32") / 255.0
    return ops.cast(images, "float32")


class Method(TracedTraining, keras.Model):
    """Base class of training methods (see the module's description).

    Args:
        encoder: f, a layer mapping images to the representation h.
        head: g, a layer mapping h to a projection.
        augmenter: makes one view per call; None uses the images as they are.
        num_classes: when set, an online linear probe (as in the official
            SimCLR code) learns to classify `stop_gradient(h)` of the first
            views from the labels given to `fit` as `y`; its cross-entropy is
            added to the loss (it trains the probe only) and
            `probe_accuracy` is logged.
        input_layer: a layer applied first to what `fit` gives, returning
            the images; None takes `x` as the images. The `device` training
            input uses it to gather each batch by index from images held on
            the device. It is data plumbing: it is left out of the config.

    Attributes:
        probe_views: how many rows of probe logits `call` returns per image
            (their labels are the batch's, repeated).
    """

    probe_views = 2

    def __init__(self, encoder, head, augmenter=None, num_classes=None, input_layer=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.input_layer = input_layer
        self.encoder = encoder
        self.head = head
        self.augmenter = augmenter
        self.num_classes = num_classes
        self.probe = None
        if num_classes:
            self.probe = keras.layers.Dense(num_classes, dtype="float32", name="probe")
            self.probe_accuracy = keras.metrics.SparseCategoricalAccuracy(name="probe_accuracy")
            # A Keras Loss scales itself for the replicas of tf.distribute.
            self.probe_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def build(self, input_shape=None):
        """Nothing to build ahead: the parts build on the first call, when
        the images' shape (after `input_layer` and the augmenter) is known.
        A method that owns variables whose shape depends on its parts
        creates them here (Keras refuses new state after `build`); see
        `symbolic`."""

    def symbolic(self, fn, input_shape):
        """The output spec of `fn(x)` for an `x` shaped `input_shape`, in the
        dtype `fit` gives (indices with an `input_layer`, else images),
        computed without data; builds the layers `fn` calls."""
        # Keras' own symbolic pass (what `Layer.compute_output_spec` uses),
        # not exported under `keras.backend`.
        from keras.src.backend import compute_output_spec

        if isinstance(input_shape, dict):  # aspect-kept images, see `images`
            x = {key: keras.KerasTensor(shape, dtype="int32" if key == "sizes" else "float32")
                 for key, shape in input_shape.items()}
        else:
            dtype = "int32" if self.input_layer is not None else "float32"
            x = keras.KerasTensor(input_shape, dtype=dtype)
        return compute_output_spec(fn, x)

    # What subclasses write ------------------------------------------------

    def objective(self, outputs):
        """The method's loss from `call`'s training outputs."""
        raise NotImplementedError

    def update_metrics(self, outputs):
        """Updates the method's own metrics from `call`'s outputs."""

    # What the base supplies ----------------------------------------------

    def images(self, x):
        """The float32 images in [0, 1] of what `fit` gives.

        Images kept at their aspect ratio come as a dict, returned with its
        images as float: `{"images": canvas, "sizes": (B, 2)}` (each
        image's height and width on a padded canvas, from the `memory` and
        `device` inputs), or `{"views": (B, 2, H, W, C)}` (two crops of each
        image made on CPU workers by the `stream` input). Pass the result
        on to `two_views` or `view`, which know both forms.
        """
        x = x if self.input_layer is None else self.input_layer(x)
        if isinstance(x, dict):
            return {key: value if key == "sizes" else to_unit_float(value)
                    for key, value in x.items()}
        return to_unit_float(x)

    def two_views(self, images):
        """Two independently augmented views of every image (of `images`'
        result)."""
        if isinstance(images, dict):
            return self._two_sized_views(images)
        if self.augmenter is None:
            return images, images
        return self.augmenter(images, training=True), self.augmenter(images, training=True)

    def _two_sized_views(self, images):
        if "views" in images:
            first, second = images["views"][:, 0], images["views"][:, 1]
            if self.augmenter is None:
                return first, second
            return (self.augmenter(first, training=True, cropped=True),
                    self.augmenter(second, training=True, cropped=True))
        self._check_crops()
        canvas, sizes = images["images"], images["sizes"]
        return (self.augmenter(canvas, training=True, sizes=sizes),
                self.augmenter(canvas, training=True, sizes=sizes))

    def view(self, images):
        """One deterministic view of every image (of `images`' result),
        for inference: the images themselves, or for aspect-kept images the
        augmenter's evaluation view (a centred crop of each image's own
        region)."""
        if not isinstance(images, dict):
            return images
        if "views" in images:
            return images["views"][:, 0]
        self._check_crops()
        return self.augmenter(images["images"], training=False, sizes=images["sizes"])

    def _check_crops(self):
        if self.augmenter is None:
            raise ValueError(
                "augment: expected an augmenter that crops (such as simclr) for images "
                "kept at their aspect ratio, received none"
            )

    def probe_logits(self, h):
        """The online probe's logits of stop-gradient `h`, or None."""
        if self.probe is None:
            return None
        return self.probe(ops.stop_gradient(ops.cast(h, "float32")))

    def connect(self, distribution):
        """Adapts the method to `distribution` (called by its `prepare`):
        `gather` then returns every replica's rows, and the augmenter draws
        each replica's own rows of the global batch's parameters."""
        object.__setattr__(self, "_distribution", distribution)
        if self.augmenter is not None:
            connect_replicas(self.augmenter, distribution.replica_rows)

    def gather(self, x):
        """Every replica's rows of `x` (with gradient), in replica order; `x`
        itself on one replica and where the step already sees the global
        batch (jax)."""
        distribution = self.__dict__.get("_distribution")
        return x if distribution is None else distribution.gather(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = self.objective(y_pred)
        self.update_metrics(y_pred)
        logits = y_pred.get("probe")
        if logits is not None and y is not None:
            labels = ops.concatenate([y] * self.probe_views, axis=0)
            self.probe_accuracy.update_state(labels, logits)
            loss = loss + self.probe_loss(labels, logits)
        for extra in self.losses:
            loss = loss + ops.cast(extra, loss.dtype)
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            head=keras.saving.serialize_keras_object(self.head),
            augmenter=keras.saving.serialize_keras_object(self.augmenter),
            num_classes=self.num_classes,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "head", "augmenter", "loss"):
            if key in config:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
