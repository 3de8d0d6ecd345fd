"""The distributed check's step on tensorflow: a `MirroredStrategy`."""

import numpy as np

from contrastive.distribute.tensorflow_backend import TensorFlowDistribution


def _forward_loss(model, x):
    return model.objective(model(x, training=True))


def check_step(build_model, images, replicas, sync_batchnorm=True, gather_negatives=True):
    """One step on one device (`replicas` 1) or on `replicas` replicas of a
    `MirroredStrategy`; see `contrastive.distribute.check`."""
    import tensorflow as tf

    if replicas == 1:
        model = build_model()

        @tf.function
        def single(x):
            with tf.GradientTape() as tape:
                loss = _forward_loss(model, x)
            return loss, tape.gradient(loss, model.trainable_variables)

        loss, grads = single(tf.constant(images))
        return _numpy(loss, grads, model)

    dist = TensorFlowDistribution(replicas, sync_batchnorm, gather_negatives)
    return _distributed_step(dist, build_model, images)


def process_step(build_model, images, sync_batchnorm=True, gather_negatives=True):
    """This worker's part of one step of a `MultiWorkerMirroredStrategy`
    (from `TF_CONFIG`): its replicas compute on their rows of `images`.

    Returns:
        `(result, is_chief)`, `result` as `check_step`'s.
    """
    dist = TensorFlowDistribution(None, sync_batchnorm, gather_negatives)
    return _distributed_step(dist, build_model, images), dist.is_chief


def _distributed_step(dist, build_model, images):
    import tensorflow as tf

    strategy = dist.tf_strategy
    with dist.scope():
        model = build_model()
        dist.prepare(model)
    n = images.shape[0] // dist.num_replicas
    shards = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(
            images[ctx.replica_id_in_sync_group * n:(ctx.replica_id_in_sync_group + 1) * n]
        )
    )

    def replica_step(x):
        with tf.GradientTape() as tape:
            loss = _forward_loss(model, x)  # scaled by 1 / replicas
        grads = tape.gradient(loss, model.trainable_variables)
        grads = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, grads
        )
        return loss, grads

    @tf.function
    def step(x):
        loss, grads = strategy.run(replica_step, args=(x,))
        loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)
        grads = [strategy.experimental_local_results(g)[0] for g in grads]
        return loss, grads

    with dist.scope():
        loss, grads = step(shards)
    return _numpy(loss, grads, model)


def _numpy(loss, grads, model):
    return {
        "loss": float(np.asarray(loss)),
        "grads": [np.asarray(g, dtype=np.float64) for g in grads],
        "stats": [np.asarray(v.numpy(), dtype=np.float64) for v in model.non_trainable_variables],
    }
