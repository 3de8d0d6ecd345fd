"""How the training images reach the model: `train.input`.

- `memory`: decoded into host memory; each step's batch is copied to the
  device (`contrastive.batches.ShuffledBatches`).
- `device`: decoded into host memory, then held in device memory
  (`contrastive.resident.ResidentImages`); `fit` is fed indices only and
  the batch is gathered on the device.
- `stream`: read from the image files as training goes (tf.data), decoded
  and resized on CPU workers; augmentation stays on the device
  (`contrastive.streaming`).
- `auto`: `stream` when the decoded training set would take more than a
  quarter of this machine's memory and the dataset is read from files;
  else `device` when it takes at most `DEVICE_BYTES`; else `memory`.

Every mode draws the same batches from the seed
(`contrastive.batches.epoch_order`), so runs resume exactly in each.
"""

import os

import numpy as np

from contrastive.errors import SpecError

MODES = ("auto", "memory", "device", "stream")
DEVICE_BYTES = 1 << 30


def host_memory_bytes():
    """This machine's physical memory, or None where it is unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_training_set(dataset, mode, split="train"):
    """Loads the training split (or `split`) as the input mode needs it.

    Returns:
        `(mode, data)`: the resolved mode (never `auto`) and `Arrays`
        (`memory`, `device`) or `Files` (`stream`).

    Raises:
        SpecError: `stream` was asked of a dataset that is not read from
            image files.
    """
    if mode == "stream" or (mode == "auto" and _too_big_for_memory(dataset, split)):
        if not dataset.can_stream:
            raise SpecError(
                f"expected a dataset read from image files for stream, received "
                f"'{type(dataset).__name__}', which is not (use memory or device)",
                "train.input",
            )
        return "stream", dataset.files(split)
    train = dataset.load(split)
    if mode == "auto":
        mode = "device" if train.images.nbytes <= DEVICE_BYTES else "memory"
    return mode, train


def _too_big_for_memory(dataset, split):
    if not dataset.can_stream:
        return False
    memory = host_memory_bytes()
    return memory is not None and dataset.files(split, check=False).nbytes > memory // 4


def fit_input(mode, train, batch_size, seed, steps_per_epoch, first_epoch, epochs,
              with_labels):
    """What `fit` is given, and the resident set the model gathers from.

    Returns:
        `(data, resident)`: a `PyDataset` or `tf.data.Dataset`, and a
        `ResidentImages` for `device` (else None). Build the resident set
        under the distribution's scope.
    """
    from contrastive.batches import ShuffledBatches

    labels = train.labels if with_labels else None
    if mode == "stream":
        from contrastive.streaming import training_stream

        data = training_stream(train, batch_size, seed, steps_per_epoch, first_epoch, epochs,
                               with_labels=labels is not None)
        return data, None
    if mode == "device":
        from contrastive.resident import ResidentImages

        resident = ResidentImages(train.images, labels, name="resident")
        indices = np.arange(len(train), dtype=np.int32)
        return ShuffledBatches(indices, batch_size, seed, steps_per_epoch, first_epoch), resident
    return ShuffledBatches(train.images, batch_size, seed, steps_per_epoch, first_epoch,
                           labels=labels), None
