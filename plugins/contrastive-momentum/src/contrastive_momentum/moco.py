"""MoCo v2 (Chen, Fan, Girshick and He 2020, "Improved Baselines with
Momentum Contrastive Learning"), the method `moco_v2`."""

import keras
from keras import ops

from contrastive.methods import Method
from contrastive.typecheck import PositiveFloat, PositiveInt, Probability
from contrastive_momentum.momentum import clone, follow, freeze


def l2_normalize(z):
    z = ops.cast(z, "float32")
    return z / ops.maximum(ops.norm(z, axis=-1, keepdims=True), 1e-12)


class InfoNCE(keras.losses.Loss):
    """MoCo's contrastive loss: each query must pick its key among the key
    and the queue's K negatives (a (K+1)-way softmax at `temperature`).

    Called as `loss(q, keys)` with `q` the l2-normalised queries `(N, d)`
    and `keys` the N positive keys followed by the K queue entries,
    `(N + K, d)`, all l2-normalised. Returns one loss per query (Keras'
    reduction averages them, and scales for tf.distribute's replicas).
    """

    def __init__(self, temperature=0.2, **kwargs):
        kwargs.setdefault("name", "info_nce")
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, q, keys):
        n = ops.shape(q)[0]
        positive = ops.sum(q * keys[:n], axis=1, keepdims=True)
        negatives = ops.matmul(q, ops.transpose(keys[n:]))
        logits = ops.concatenate([positive, negatives], axis=1) / self.temperature
        return ops.logsumexp(logits, axis=1) - logits[:, 0]

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


class MoCoV2(Method):
    """MoCo v2: a query encoder trained by gradient, a key encoder that
    follows it by momentum, and a queue of past keys as negatives.

    Each step makes two views of every image. The query network (the
    spec's encoder and head) maps the first to q; the key network, a copy
    of it whose weights are `m * key + (1 - m) * query` after every step,
    maps the second to k (no gradient). The loss is InfoNCE of q against its
    k and the queue's K keys, at `temperature`. Then the keys of the whole
    global batch (every replica's, gathered) enter the queue and the oldest
    leave it. The queue and the key network are Keras variables, so they
    are checkpointed and resumed with the rest.

    Differences from the paper's code: the queue is a first-in-first-out
    shift (the same set as its circular buffer); batch norm follows the
    run's `distribute.sync_batchnorm` (global statistics, as MoCo v3) rather
    than MoCo's shuffled batch norm.

    Args:
        encoder, head, augmenter, num_classes, input_layer: see `Method`;
            the online probe learns from the query views' h.
        queue_size: K, the negatives kept (65,536 in the paper).
        temperature: tau of InfoNCE (0.2 in MoCo v2).
        momentum: m of the key network (0.999 in the paper).

    Returns (call):
        `{"h", "q", "k", "queue"}` in training (the queue as it was before
        this step's keys entered it), `{"h"}` in inference; with a probe,
        `"probe"` too.
    """

    probe_views = 1

    def __init__(self, encoder, head, augmenter=None, num_classes=None, input_layer=None,
                 queue_size: PositiveInt = 4096, temperature: PositiveFloat = 0.2,
                 momentum: Probability = 0.999, **kwargs):
        super().__init__(encoder, head, augmenter, num_classes, input_layer, **kwargs)
        self.queue_size = int(queue_size)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.key_encoder = clone(encoder, "key_encoder")
        self.key_head = clone(head, "key_head")
        self.info_nce = InfoNCE(self.temperature)
        self.started = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                       name="started", aggregation="only_first_replica")
        self.queue = None
        self.key_accuracy = keras.metrics.Mean(name="key_acc")

    def build(self, input_shape):
        def forward(x):  # builds both networks; the keys' width sizes the queue
            images = self.view(self.images(x))
            self.head(self.encoder(images))
            return self._keys(images, training=False)

        keys = self.symbolic(forward, input_shape)
        freeze([self.key_encoder, self.key_head])
        self.queue = self.add_weight(
            shape=(self.queue_size, keys.shape[-1]), name="queue", trainable=False,
            initializer=_unit_rows, aggregation="only_first_replica")

    def call(self, x, training=False):
        images = self.images(x)
        if not training:
            h = self.encoder(self.view(images), training=False)
            return self._with_probe({"h": h}, h)
        query_view, key_view = self.two_views(images)
        h = self.encoder(query_view, training=True)
        q = l2_normalize(self.head(h, training=True))
        follow([self.key_encoder, self.key_head], [self.encoder, self.head], self.momentum,
               self.started)
        self.started.assign(1.0)
        k = ops.stop_gradient(self._keys(key_view, training=True))
        queue = ops.copy(self.queue.value)  # before this step's keys enter it
        entering = ops.stop_gradient(self.gather(k))
        self.queue.assign(ops.concatenate([entering, queue], axis=0)[: self.queue_size])
        return self._with_probe({"h": h, "q": q, "k": k, "queue": queue}, h)

    def _keys(self, images, training):
        return l2_normalize(self.key_head(self.key_encoder(images, training=training),
                                          training=training))

    def _with_probe(self, outputs, h):
        if self.probe is not None:
            outputs["probe"] = self.probe_logits(h)
        return outputs

    def objective(self, outputs):
        keys = ops.concatenate([outputs["k"], ops.cast(outputs["queue"], "float32")], axis=0)
        return self.info_nce(outputs["q"], keys)

    def update_metrics(self, outputs):
        q, k, queue = outputs["q"], outputs["k"], ops.cast(outputs["queue"], "float32")
        positive = ops.sum(q * k, axis=1)
        hardest = ops.max(ops.matmul(q, ops.transpose(queue)), axis=1)
        self.key_accuracy.update_state(ops.cast(positive > hardest, "float32"))

    def get_config(self):
        config = super().get_config()
        config.update(queue_size=self.queue_size, temperature=self.temperature,
                      momentum=self.momentum)
        return config


def _unit_rows(shape, dtype=None):
    """Random keys on the unit sphere, as MoCo's initial queue."""
    return l2_normalize(keras.random.normal(shape, dtype="float32"))
