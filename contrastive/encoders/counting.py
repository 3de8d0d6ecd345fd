"""Counting parameters and output shapes without allocating the weights.

A ResNet-50 (4x) has 375M parameters (1.5 GB in float32) and initialising
them takes half a minute on a CPU. `unallocated()` builds layers with
variables that have shapes and dtypes but no values, so parameter counts and
output shapes come for free. Layers built inside it cannot be called.
"""

import contextlib
import math


@contextlib.contextmanager
def unallocated():
    """Variables created inside the block are never initialised.

    Uses Keras' deferred initialisation (`keras.StatelessScope` with
    `initialize_variables=False`), then forgets the deferred variables so that
    no later scope initialises them.
    """
    import keras
    from keras.src.backend.common import global_state

    key = "uninitialized_variables"
    before = list(global_state.get_global_attribute(key, [], set_to_default=True))
    try:
        with keras.StatelessScope(initialize_variables=False):
            yield
    finally:
        known = {id(v) for v in before}
        pending = global_state.get_global_attribute(key, [], set_to_default=True)
        global_state.set_global_attribute(key, [v for v in pending if id(v) in known])


def count(variables):
    """The number of scalars in `variables` (values need not exist)."""
    return sum(math.prod(int(d) for d in v.shape) for v in variables)


def parameter_counts(layer):
    """`{"total", "trainable", "non_trainable"}` scalars of a built layer.

    `non_trainable` holds the batch-norm moving averages.
    """
    trainable = count(layer.trainable_variables)
    non_trainable = count(layer.non_trainable_variables)
    return {
        "total": trainable + non_trainable,
        "trainable": trainable,
        "non_trainable": non_trainable,
    }
