"""Shuffled full batches of in-memory images, reproducible from a seed."""

import keras
import numpy as np


class ShuffledBatches(keras.utils.PyDataset):
    """Yields `(images,)` or `(images, labels)` batches of exactly
    `batch_size`, reshuffled each epoch.

    The order of epoch `e` is a permutation drawn from `(seed, e)`, so a run
    is reproducible and can resume at any epoch. The remainder that does
    not fill a batch is left out of that epoch (a different one each epoch),
    as SimCLR's input pipelines drop it.

    Args:
        images: uint8 array `(N, H, W, C)`.
        batch_size: images per batch.
        seed: the shuffling seed.
        steps_per_epoch: batches per epoch; default `N // batch_size`.
        first_epoch: the epoch whose order the first pass uses.
        labels: `(N,)` labels to yield beside the images, or None.
    """

    def __init__(self, images, batch_size, seed, steps_per_epoch=None, first_epoch=0,
                 labels=None):
        super().__init__()
        if batch_size > len(images):
            raise ValueError(
                f"batch_size: expected at most the {len(images)} training images, "
                f"received {batch_size}"
            )
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.seed = seed
        self.steps = steps_per_epoch or len(images) // batch_size
        self.epoch = first_epoch
        self._order = None
        self._order_epoch = None

    def __len__(self):
        return self.steps

    def order(self, epoch):
        """The permutation of the images used in `epoch`, long enough for
        every step (concatenated permutations when an epoch outlasts one)."""
        rng = np.random.default_rng([self.seed, epoch])
        need = self.steps * self.batch_size
        parts = [rng.permutation(len(self.images)) for _ in range(-(-need // len(self.images)))]
        return np.concatenate(parts)[:need]

    def __getitem__(self, index):
        if self._order_epoch != self.epoch:
            self._order = self.order(self.epoch)
            self._order_epoch = self.epoch
        picks = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        if self.labels is None:
            return (self.images[picks],)
        return self.images[picks], self.labels[picks]

    def on_epoch_end(self):
        self.epoch += 1
