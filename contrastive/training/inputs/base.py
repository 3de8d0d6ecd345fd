"""The interface every `train.input` mode implements, and the epoch order
they all share."""

import numpy as np


def epoch_order(n, batch_size, steps, seed, epoch):
    """The indices of epoch `epoch`'s batches, `(steps, batch_size)`.

    A permutation of `range(n)` drawn from `(seed, epoch)` (concatenated
    permutations when an epoch outlasts one) cut into batches, each batch
    sorted. Every input mode draws its order here, so they see the same
    batches and a run can resume at any epoch.
    """
    rng = np.random.default_rng([seed, epoch])
    need = steps * batch_size
    parts = [rng.permutation(n) for _ in range(-(-need // n))]
    return np.sort(np.concatenate(parts)[:need].reshape(steps, batch_size), axis=1)


class TrainingInput:
    """How the training images reach `fit`: one subclass per `train.input`
    mode (`memory`, `device`, `stream`).

    Every mode gives `fit` batches of exactly `batch_size`, epoch `e` in the
    order `epoch_order(..., seed, e)`, so a run resumes exactly and the
    modes train to the same weights. With `with_labels`, `fit` receives
    `(x, labels)` and the labels reach the model's `compute_loss` as `y`
    (the online probe learns from them); otherwise `(x,)`.

    What `x` is depends on the mode: uint8 images `(B, H, W, C)`, or, for
    `device`, the batch's indices, which the layer of `input_layer()` (the
    model's documented `input_layer` hook) turns into images on the device.
    Images kept at their aspect ratio (`Arrays.sizes`, `Files.stored_side`)
    reach the model as a dict (see `Method.images`): `{"images", "sizes"}`
    (`memory`, `device`), `{"views"}`, two crops per image (`stream`).

    Args:
        data: the training split: `Arrays` (memory, device) or `Files`
            (stream).
        batch_size: source images per step.
        seed: the shuffling seed.
        steps_per_epoch: batches per epoch; default every full batch.
        with_labels: give `fit` the labels too (`data.labels` must exist).
        augmenter: the run's augmenter; `stream` draws the crops of
            aspect-kept images with it (`crop_boxes`) on its CPU workers.
        rows: the `slice` of each global batch this process feeds (its
            share under several processes, `Distribution.process_rows`);
            default all. Only those rows are read, gathered or decoded.
    """

    mode = None

    def __init__(self, data, batch_size, seed, steps_per_epoch=None, with_labels=False,
                 augmenter=None, rows=None):
        if batch_size > len(data):
            raise ValueError(
                f"batch_size: expected at most the {len(data)} training images, "
                f"received {batch_size}"
            )
        if with_labels and data.labels is None:
            raise ValueError("with_labels: the training data has no labels")
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = steps_per_epoch or len(data) // batch_size
        self.with_labels = with_labels
        self.augmenter = augmenter
        self.rows = rows or slice(0, batch_size)
        self.local_batch_size = len(range(batch_size)[self.rows])

    def __len__(self):
        return len(self.data)

    @property
    def image_shape(self):
        """`(H, W, C)` of the images the model receives."""
        return self.data.image_shape

    @property
    def labels(self):
        """The labels of the training images, or None."""
        return self.data.labels

    @property
    def skipped(self):
        """The unreadable images left out, each named with its reason: those
        found before training (`data.skipped`) and, streaming, since."""
        return tuple(getattr(self.data, "skipped", ()))

    def order(self, epoch):
        """The batches of `epoch`: see `epoch_order`."""
        return epoch_order(len(self.data), self.batch_size, self.steps_per_epoch, self.seed, epoch)

    def local_order(self, epoch):
        """This process' rows (`rows`) of each batch of `epoch`,
        `(steps, local_batch_size)`."""
        return self.order(epoch)[:, self.rows]

    def fit_arguments(self, first_epoch, epochs):
        """The arguments of `fit` that carry the data, for epochs
        `first_epoch .. epochs - 1`: `x`, and `steps_per_epoch` where `fit`
        cannot count the batches itself."""
        raise NotImplementedError

    def callbacks(self):
        """Callbacks `fit` needs for this input (e.g. to follow the epoch)."""
        return []

    def input_layer(self):
        """A layer the model applies first to each `x`, or None. Called
        (once) under the distribution's scope, where its variables belong."""
        return None

    def example(self, count=2):
        """An `x` of `count` rows in the form `fit` gives, to build a model."""
        sizes = getattr(self.data, "sizes", None)
        if sizes is not None:
            canvas = self.data.images.shape[1:]
            return {"images": np.zeros((count, *canvas), np.uint8),
                    "sizes": np.tile(np.asarray(canvas[:2], np.int32), (count, 1))}
        return np.zeros((count, *self.image_shape), np.uint8)
