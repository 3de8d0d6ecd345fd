"""Several processes: each input mode reads only its process' rows of every
global batch, and the processes' rows together are the global batch."""

import numpy as np
import pytest
from PIL import Image

from contrastive.distribute import Distribution
from contrastive.errors import SpecError
from contrastive.training.inputs import DeviceInput, MemoryInput, StreamInput

BATCH, STEPS, SEED = 8, 3, 5


class FakeProcesses(Distribution):
    """The process facts of process `index` of `count`."""

    def __init__(self, count, index):
        super().__init__()
        self.count, self.index = count, index

    @property
    def num_processes(self):
        return self.count

    @property
    def process_index(self):
        return self.index


class CountingRows(np.ndarray):
    """An array that counts the rows taken from it by fancy indexing."""

    taken = 0

    def __getitem__(self, index):
        if isinstance(index, np.ndarray):
            CountingRows.taken += len(index)
        return np.asarray(super().__getitem__(index))


class Arrays:
    def __init__(self, images, labels=None):
        self.images, self.labels, self.sizes = images, labels, None
        self.image_shape = images.shape[1:]

    def __len__(self):
        return len(self.images)


def _images(n=30):
    return np.random.default_rng(0).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)


def test_process_rows_are_contiguous_and_cover_the_batch():
    shares = [FakeProcesses(4, p).process_rows(BATCH) for p in range(4)]
    assert shares == [slice(0, 2), slice(2, 4), slice(4, 6), slice(6, 8)]
    assert Distribution().process_rows(BATCH) == slice(0, 8)
    with pytest.raises(SpecError, match="divisible by the 3 processes, received 8"):
        FakeProcesses(3, 0).process_rows(BATCH)


@pytest.mark.parametrize("processes", [2, 4])
def test_memory_processes_gather_only_their_rows(processes):
    images = _images()
    whole = MemoryInput(Arrays(images), BATCH, SEED, STEPS)
    shares = []
    for p in range(processes):
        rows = FakeProcesses(processes, p).process_rows(BATCH)
        counted = images.view(CountingRows)
        CountingRows.taken = 0
        share = MemoryInput(Arrays(counted), BATCH, SEED, STEPS, rows=rows)
        batches = share.fit_arguments(1, 2)["x"]
        shares.append([batches[i][0] for i in range(STEPS)])
        assert CountingRows.taken == STEPS * BATCH // processes
    batches = whole.fit_arguments(1, 2)["x"]
    for step in range(STEPS):
        together = np.concatenate([share[step] for share in shares])
        np.testing.assert_array_equal(together, batches[step][0])


def test_device_processes_feed_only_their_indices():
    images = _images()
    whole = DeviceInput(Arrays(images), BATCH, SEED, STEPS).fit_arguments(0, 1)["x"]
    first = DeviceInput(Arrays(images), BATCH, SEED, STEPS, rows=slice(0, 4))
    second = DeviceInput(Arrays(images), BATCH, SEED, STEPS, rows=slice(4, 8))
    for step in range(STEPS):
        indices = [share.fit_arguments(0, 1)["x"][step][0] for share in (first, second)]
        assert all(len(i) == BATCH // 2 for i in indices)
        np.testing.assert_array_equal(np.concatenate(indices), whole[step][0])


def test_stream_processes_decode_only_their_rows(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from contrastive.datasets.image_folder import ImageFolder
    from contrastive.training.inputs import stream

    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            tmp_path / "a" / f"{i:02d}.png")
    files = ImageFolder(str(tmp_path), size=8).files()
    decoded = []
    real_decode = stream.decode

    def counting_decode(path, size):
        image = real_decode(path, size)
        return tf.numpy_function(lambda x: decoded.append(1) or x, [image], image.dtype,
                                 stateful=True)

    monkeypatch.setattr(stream, "decode", counting_decode)
    whole = list(StreamInput(files, BATCH, SEED, 2).dataset(0, 2).as_numpy_iterator())
    decoded.clear()
    shares = []
    for p in range(2):
        rows = FakeProcesses(2, p).process_rows(BATCH)
        dataset = StreamInput(files, BATCH, SEED, 2, rows=rows).dataset(0, 2)
        shares.append(list(dataset.as_numpy_iterator()))
        assert len(decoded) == 2 * 2 * BATCH // 2  # epochs x steps x its rows
        decoded.clear()
    for step, (images,) in enumerate(whole):
        together = np.concatenate([share[step][0] for share in shares])
        np.testing.assert_array_equal(together.reshape(images.shape), images)
