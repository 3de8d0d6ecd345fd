"""Shuffled full batches of in-memory images, reproducible from a seed."""

import keras
import numpy as np


def epoch_order(n, batch_size, steps, seed, epoch):
    """The indices of epoch `epoch`'s batches, `(steps, batch_size)`.

    A permutation of `range(n)` drawn from `(seed, epoch)` (concatenated
    permutations when an epoch outlasts one) cut into batches, each batch
    sorted. Every input mode (memory, device, stream) draws its order here,
    so they see the same batches and a run can resume at any epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    need = steps * batch_size
    parts = [rng.permutation(n) for _ in range(-(-need // n))]
    return np.sort(np.concatenate(parts)[:need].reshape(steps, batch_size), axis=1)


class ShuffledBatches(keras.utils.PyDataset):
    """Yields `(images,)` or `(images, labels)` batches of exactly
    `batch_size`, reshuffled each epoch.

    The order of epoch `e` is a permutation drawn from `(seed, e)`, so a run
    is reproducible and can resume at any epoch. Give `fit` the callback
    `follow()`, which tells the batches which epoch runs. The remainder that does
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
        """The batches of `epoch`: see `epoch_order`."""
        return epoch_order(len(self.images), self.batch_size, self.steps, self.seed, epoch)

    def __getitem__(self, index):
        if self._order_epoch != self.epoch:
            self._order = self.order(self.epoch)
            self._order_epoch = self.epoch
        picks = self._order[index]
        if self.labels is None:
            return (self.images[picks],)
        return self.images[picks], self.labels[picks]

    def follow(self):
        """A callback that sets `epoch` to the epoch `fit` begins.

        Keras' own `on_epoch_begin`/`on_epoch_end` calls on a `PyDataset`
        do not count epochs (building the model and resetting the iterator
        call them too), so the epoch comes from the training loop itself.
        """
        return _FollowEpochs(self)


class _FollowEpochs(keras.callbacks.Callback):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch
