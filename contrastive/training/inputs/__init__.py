"""How the training images reach the model: `train.input`.

- `memory`: decoded into host memory; each step's batch is copied to the
  device (`MemoryInput`).
- `device`: decoded into host memory, then held in device memory; `fit` is
  fed indices only and the batch is gathered on the device (`DeviceInput`).
- `stream`: read from the image files as training goes (tf.data), decoded
  and resized on CPU workers (`StreamInput`).
- `auto`: `stream` when the decoded training set would take more than a
  quarter of this machine's memory and the dataset is read from files;
  else `device` when it takes at most `DEVICE_BYTES`; else `memory`.

Every mode implements `TrainingInput` and draws the same batches from the
seed (`epoch_order`), so runs resume exactly in each.
"""

import os

from contrastive.errors import SpecError
from contrastive.training.inputs.base import TrainingInput, epoch_order
from contrastive.training.inputs.device import DeviceInput, ResidentImages
from contrastive.training.inputs.memory import MemoryInput, ShuffledBatches
from contrastive.training.inputs.stream import StreamInput

MODES = {"memory": MemoryInput, "device": DeviceInput, "stream": StreamInput}
DEVICE_BYTES = 1 << 30

__all__ = [
    "DEVICE_BYTES", "MODES", "DeviceInput", "MemoryInput", "ResidentImages",
    "ShuffledBatches", "StreamInput", "TrainingInput", "epoch_order", "load_split",
    "training_input",
]


def host_memory_bytes():
    """This machine's physical memory, or None where it is unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_split(dataset, mode, split="train"):
    """Loads `split` as input `mode` needs it.

    Returns:
        `(mode, data)`: the resolved mode (never `auto`) and `Arrays`
        (`memory`, `device`) or `Files` (`stream`).

    Raises:
        SpecError: `stream` was asked of a dataset not read from image files.
    """
    if mode == "stream" or (mode == "auto" and _too_big_for_memory(dataset, split)):
        if not dataset.can_stream:
            raise SpecError(
                f"expected a dataset read from image files for stream, received "
                f"'{type(dataset).__name__}', which is not (use memory or device)",
                "train.input",
            )
        return "stream", dataset.files(split)
    data = dataset.load(split)
    if mode == "auto":
        mode = "device" if data.images.nbytes <= DEVICE_BYTES else "memory"
    return mode, data


def training_input(dataset, mode, batch_size, seed, steps_per_epoch=None, with_labels=False,
                   augmenter=None, rows=None, no_device=None):
    """The `TrainingInput` of `dataset`'s training split in `mode`
    (`augmenter`: the run's, which `stream` crops aspect-kept images with;
    `rows`: this process' slice of each global batch, default all of it;
    `no_device`: None, or why `device` cannot run here, in which case `auto`
    picks `memory` instead).

    Raises:
        SpecError: the mode does not fit the dataset or the distribution, or
            the batch is larger than the training set.
    """
    if mode == "device" and no_device:
        raise SpecError(f"expected memory, stream or auto, received device: {no_device}",
                        "train.input")
    mode, data = load_split(dataset, mode)
    if mode == "device" and no_device:
        mode = "memory"  # auto's choice
    if batch_size > len(data):
        raise SpecError(
            f"expected at most the {len(data)} training images, received {batch_size}",
            "train.batch_size",
        )
    with_labels = with_labels and data.labels is not None
    return MODES[mode](data, batch_size, seed, steps_per_epoch, with_labels, augmenter,
                       rows=rows)


def _too_big_for_memory(dataset, split):
    if not dataset.can_stream:
        return False
    memory = host_memory_bytes()
    return memory is not None and dataset.files(split, check=False).nbytes > memory // 4
