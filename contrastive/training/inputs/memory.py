"""`train.input: memory`: decoded images in host memory, a batch copied to
the device each step."""

import keras
import numpy as np

from contrastive.training.inputs.base import TrainingInput, epoch_order


class ShuffledBatches(keras.utils.PyDataset):
    """Rows of `arrays` (each a NumPy array with the same first dimension)
    in batches of exactly `batch_size`, epoch `e` in the order
    `epoch_order(..., seed, e)`. The remainder that does not fill a batch is
    left out of that epoch (a different one each epoch), as SimCLR's input
    pipelines drop it.

    Give `fit` the callback `follow()`, which tells the batches which epoch
    runs: Keras' own `on_epoch_begin`/`on_epoch_end` calls on a `PyDataset`
    do not count epochs (building the model and resetting the iterator call
    them too).

    Args:
        arrays: a tuple of arrays; each batch is the tuple of their rows.
        batch_size: rows per batch.
        seed: the shuffling seed.
        steps_per_epoch: batches per epoch.
        first_epoch: the epoch whose order the first pass uses.
        form: turns the tuple of a batch's rows into what the batch is
            (default: the tuple).
        rows: the `slice` of each batch to give (this process' share);
            default all of it.
    """

    def __init__(self, arrays, batch_size, seed, steps_per_epoch, first_epoch=0, form=None,
                 rows=None):
        super().__init__()
        self.arrays = tuple(arrays)
        self.batch_size = batch_size
        self.seed = seed
        self.steps = steps_per_epoch
        self.epoch = first_epoch
        self.rows = rows or slice(None)
        self._order = None
        self._order_epoch = None
        self.form = form or tuple

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        if self._order_epoch != self.epoch:
            self._order = epoch_order(len(self.arrays[0]), self.batch_size, self.steps,
                                      self.seed, self.epoch)[:, self.rows]
            self._order_epoch = self.epoch
        picks = self._order[index]
        return self.form(tuple(array[picks] for array in self.arrays))

    def follow(self):
        """A callback that sets `epoch` to the epoch `fit` begins."""
        return _FollowEpochs(self)


class _FollowEpochs(keras.callbacks.Callback):
    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = epoch


class MemoryInput(TrainingInput):
    """Each step's uint8 images (and labels) are gathered on the host and
    copied to the device."""

    mode = "memory"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        arrays = self._rows()
        if self.with_labels:
            arrays = (*arrays, np.asarray(self.data.labels, np.int32))
        self._batches = ShuffledBatches(arrays, self.batch_size, self.seed, self.steps_per_epoch,
                                        form=self._form, rows=self.rows)

    def _rows(self):
        if self.data.sizes is not None:
            return (self.data.images, self.data.sizes)
        return (self.data.images,)

    def _form(self, rows):
        """`(x,)` or `(x, labels)` from a batch's rows: aspect-kept images
        as `{"images", "sizes"}` (see `TrainingInput`)."""
        if self.data.sizes is None:
            return rows
        return ({"images": rows[0], "sizes": rows[1]}, *rows[2:])

    def fit_arguments(self, first_epoch, epochs):
        self._batches.epoch = first_epoch
        return {"x": self._batches}

    def callbacks(self):
        return [self._batches.follow()]
