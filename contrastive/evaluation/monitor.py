"""A kNN monitor of the representation during pretraining."""

import keras

from contrastive.evaluation.features import features_of
from contrastive.evaluation.knn import knn_accuracies


class KnnMonitor(keras.callbacks.Callback):
    """Adds `knn_accuracy` (top-1) and `knn_top5_accuracy` to the epoch
    logs every `every` epochs; kNN runs on the device.

    Args:
        train: labelled `Arrays` or `Files` whose h forms the kNN memory
            bank.
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
        knn = knn_accuracies(
            features_of(encoder, self.train), self.train.labels,
            features_of(encoder, self.test), self.test.labels,
            k=self.k, temperature=self.temperature,
        )
        logs["knn_accuracy"], logs["knn_top5_accuracy"] = knn["top1"], knn["top5"]
