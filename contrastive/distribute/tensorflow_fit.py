"""Keras' tensorflow `fit` under a `tf.distribute` strategy: synchronized
batch norm in every layer, and, over several `MultiWorkerMirroredStrategy`
workers, each worker's own rows as its replicas' input and the steps of
`fit` that fail there (keras/src/backend/tensorflow/trainer.py, 3.15).

The steps are replaced in the model's instance dict, past Keras' attribute
tracking, as the torch backend replaces `train_step`.
"""

import functools

from contrastive.distribute.base import batch_norm_layers


def synchronize_batch_norm(model, enabled=True):
    """Makes every Keras `BatchNormalization` in `model` compute its
    training statistics over every replica's rows (or its own, `enabled`
    off); Keras reads `synchronized` on each call."""
    for layer in batch_norm_layers(model):
        layer.synchronized = enabled


def mend_fit(model, dist):
    """Adapts `model`'s `fit` to `dist` (a `TensorFlowDistribution`):

    - `_maybe_symbolic_build` builds the model, then synchronizes the batch
      norm of the layers that building created (an MLP head's, built on the
      model's first call, after `prepare`). On several workers it builds
      from the first local replica's rows: Keras reduces the first
      distributed batch with `strategy.reduce`, which fails on a tuple
      there ("Attempt to convert a value (PerReplica...)"); building needs
      only shapes and dtypes.
    - On several workers, `train_step` returns each scalar metric as a
      vector of one: Keras averages the metrics over the workers with
      `strategy.reduce("MEAN", value, axis=0)`, which needs an axis to
      reduce ("Invalid reduction dimension 0 for input with 0 dimensions").
    """
    object.__setattr__(model, "_maybe_symbolic_build",
                       functools.partial(_symbolic_build, dist, model))
    if dist.num_processes > 1:
        object.__setattr__(model, "train_step",
                           functools.partial(_vector_metrics, model.train_step))


def _symbolic_build(dist, model, iterator=None, data_batch=None):
    if dist.num_processes == 1:
        type(model)._maybe_symbolic_build(model, iterator=iterator, data_batch=data_batch)
    else:
        import tensorflow as tf

        strategy = dist.tf_strategy
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: (strategy.experimental_local_results(v)[0]
                               if isinstance(v, tf.distribute.DistributedValues) else v),
                    next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)
    synchronize_batch_norm(model, dist.sync_batchnorm)


def _vector_metrics(train_step, data):
    import tensorflow as tf

    return tf.nest.map_structure(
        lambda v: tf.reshape(v, [1]) if tf.is_tensor(v) and v.shape.rank == 0 else v,
        train_step(data))


def worker_dataset(strategy, x):
    """`x` (a `tf.data.Dataset` or a `keras.utils.PyDataset` of this
    worker's rows of each global batch, `Distribution.process_rows`) as a
    `tf.distribute.DistributedDataset` of `strategy`, a
    `MultiWorkerMirroredStrategy`.

    Given a plain dataset, `fit` would distribute it with
    `experimental_distribute_dataset`, which takes each batch for the global
    one: it cuts it into `num_replicas_in_sync` pieces and shards those over
    the workers, so each worker would train on a part of its rows.
    `distribute_datasets_from_function` neither shards nor rebatches: each
    of this worker's batches is cut here into one piece per local replica,
    and local replica `r` (global replica `worker * local + r`) receives
    piece `r`: every replica computes on the rows it has in one process.
    """
    import tensorflow as tf

    dataset = x if isinstance(x, tf.data.Dataset) else batches_dataset(x)
    local = len(strategy.extended.worker_devices)
    if local > 1:
        rows = tf.nest.flatten(dataset.element_spec)[0].shape[0]
        dataset = dataset.rebatch(rows // local, drop_remainder=True)
    return strategy.distribute_datasets_from_function(lambda context: dataset)


def batches_dataset(batches):
    """The batches of a `keras.utils.PyDataset` (each a structure of NumPy
    arrays, read as Keras' own adapter reads them: `batches[i]` in order,
    one pass an epoch) as a `tf.data.Dataset` of known length."""
    import numpy as np
    import tensorflow as tf

    signature = tf.nest.map_structure(
        lambda a: tf.TensorSpec(np.shape(a), tf.as_dtype(np.asarray(a).dtype)), batches[0])

    def generate():
        for i in range(len(batches)):
            yield batches[i]

    return (tf.data.Dataset.from_generator(generate, output_signature=signature)
            .apply(tf.data.experimental.assert_cardinality(len(batches)))
            .prefetch(tf.data.AUTOTUNE))
