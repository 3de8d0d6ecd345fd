"""A kNN monitor of the representation during pretraining."""

import keras

from contrastive.evaluation.features import encode
from contrastive.evaluation.knn import knn_accuracy


class KnnMonitor(keras.callbacks.Callback):
    """Adds `knn_accuracy` to the epoch logs every `every` epochs.

    Args:
        train: labelled `Arrays` whose h forms the kNN memory bank.
        test: labelled held-out `Arrays`.
        every: epochs between measurements.
        k: neighbours.
        temperature: vote temperature.
    """

    def __init__(self, train, test, every, k=200, temperature=0.1):
        super().__init__()
        self.train, self.test = train, test
        self.every, self.k, self.temperature = every, k, temperature

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or logs is None:
            return
        encoder = self.model.encoder
        logs["knn_accuracy"] = knn_accuracy(
            encode(encoder, self.train.images), self.train.labels,
            encode(encoder, self.test.images), self.test.labels,
            k=self.k, temperature=self.temperature,
        )
