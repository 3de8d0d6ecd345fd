"""The SimCLR model: two augmented views, encoder f, projection head g, loss."""

import keras
from keras import ops


def to_unit_float(images):
    """Casts images to float32 in [0, 1]: uint8 is divided by 255."""
    if "int" in str(images.dtype):
        return ops.cast(images, "float32") / 255.0
    return ops.cast(images, "float32")


@keras.saving.register_keras_serializable(package="contrastive")
class SimCLR(keras.Model):
    """SimCLR (Chen et al. 2020) as a Keras model trained with `fit`.

    In training, `call` makes two views of every image with `augmenter`
    (independent random parameters per image and view), runs the encoder
    and the head once over all 2N views, so that batch norm sees both views
    as in the paper, and returns the representations and projections. The
    loss compares the two halves of z.

    Args:
        encoder: f, a layer mapping images to the representation h.
        head: g, a layer mapping h to the projection z.
        augmenter: makes one view per call; None trains on the images as
            they are.
        loss: a contrastive loss called as `loss(z_a, z_b)`.
        num_classes: when set, an online linear probe (as in the official
            code) learns to classify `stop_gradient(h)` of both views from
            the labels given to `fit` as `y`; its cross-entropy is added to
            the loss (it trains the probe only) and `probe_accuracy` is
            logged.
        input_layer: a layer applied first to what `fit` gives, returning
            the images; None takes `x` as the images. The `device` training
            input uses it to gather each batch from images held on the
            device by index (`contrastive.training.inputs.ResidentImages`).
            It is data plumbing, not part of the model: it is left out of
            the config.

    Call arguments:
        x: uint8 (0..255) or float (0..1) images, NHWC, or what
            `input_layer` takes.
        training: make views and update batch-norm statistics.

    Returns:
        `{"h": h, "z": z}` (and `"probe": logits` with a probe); in training
        h, z and the logits have 2N rows: the first views of the N images,
        then their second views.
    """

    def __init__(self, encoder, head, augmenter=None, loss=None, num_classes=None,
                 input_layer=None, **kwargs):
        super().__init__(**kwargs)
        self.input_layer = input_layer
        self.encoder = encoder
        self.head = head
        self.augmenter = augmenter
        self.contrastive_loss = loss
        self.num_classes = num_classes
        self.probe = None
        if num_classes:
            self.probe = keras.layers.Dense(num_classes, dtype="float32", name="probe")
            self.probe_accuracy = keras.metrics.SparseCategoricalAccuracy(name="probe_accuracy")
            # A Keras Loss scales itself for the replicas of tf.distribute.
            self.probe_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.loss_metrics = {
            name: keras.metrics.Mean(name=name)
            for name in getattr(loss, "metric_names", ())
        }

    def call(self, x, training=False):
        images = x if self.input_layer is None else self.input_layer(x)
        x = to_unit_float(images)
        if training:
            if self.augmenter is not None:
                first = self.augmenter(x, training=True)
                second = self.augmenter(x, training=True)
            else:
                first = second = x
            x = ops.concatenate([first, second], axis=0)
        h = self.encoder(x, training=training)
        z = self.head(h, training=training)
        outputs = {"h": h, "z": z}
        if self.probe is not None:
            outputs["probe"] = self.probe(ops.stop_gradient(ops.cast(h, "float32")))
        return outputs

    def represent(self, images):
        """Returns h for `images`, in inference mode (no augmentation)."""
        return self.encoder(to_unit_float(images), training=False)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z = y_pred["z"]
        n = ops.shape(z)[0] // 2
        z_a, z_b = z[:n], z[n:]
        loss = self.contrastive_loss(z_a, z_b)
        if self.loss_metrics:
            values = self.contrastive_loss.metrics_from(z_a, z_b)
            for name, tracker in self.loss_metrics.items():
                tracker.update_state(values[name])
        if self.probe is not None and y is not None:
            labels = ops.concatenate([y, y], axis=0)
            logits = y_pred["probe"]
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
            loss=keras.saving.serialize_keras_object(self.contrastive_loss),
            num_classes=self.num_classes,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "head", "augmenter", "loss"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
