"""Images found unreadable while training streams them: named, counted,
and never fatal once training has begun.

A stream numbers the candidates of each epoch (its order, then spares),
drops those that fail to decode (`tf.data`'s `ignore_errors`) and takes the
first `steps x batch_size` left, so every batch stays full and the order
stays a function of the seed, the epoch and the unreadable files. The
numbers that reach the model show the gaps: `StreamSkips` names them.
"""

import threading
import warnings

import numpy as np


class StreamSkips:
    """The candidates a stream dropped, found from the gaps in the numbers
    of the ones that reached a batch.

    Attributes:
        names: each file or member skipped, once, with the reason.

    Args:
        name_of: `name_of(epoch, position)`, the file or member that was
            candidate `position` of epoch `epoch`.
    """

    def __init__(self, name_of):
        self.name_of = name_of
        self.names = []
        self._seen = set()
        self._next = {}
        self._lock = threading.Lock()

    def note(self, epochs, positions):
        """Records a batch's `(epoch, position)` pairs; names and counts
        every candidate skipped before them (each file once, in `names`).
        Returns how many were skipped."""
        found = []
        with self._lock:
            for epoch, position in zip(np.asarray(epochs).tolist(),
                                       np.asarray(positions).tolist(), strict=True):
                expected = self._next.get(epoch, 0)
                found.extend(self.name_of(epoch, p) for p in range(expected, position))
                self._next[epoch] = max(expected, position + 1)
            for name in found:
                line = f"{name} (unreadable while streaming; skipped)"
                if line not in self._seen:  # once, however many epochs meet it
                    self._seen.add(line)
                    self.names.append(line)
                    warnings.warn(f"skipped an unreadable image: {line}", stacklevel=2)
        return np.int64(len(found))

    def batch_map(self, with_labels):
        """A function for `tf.data`'s `map` over batches of `(images,
        labels, epochs, positions)`: notes the numbers and returns
        `(images, labels)` or `(images,)`."""
        from contrastive.datasets.decode import tf_module

        tf = tf_module()

        def strip(images, labels, epochs, positions):
            done = tf.numpy_function(self.note, [epochs, positions], tf.int64, stateful=True)
            with tf.control_dependencies([done]):
                images = tf.nest.map_structure(tf.identity, images)
            return (images, labels) if with_labels else (images,)

        return strip
