"""The distributed check's step on jax: `DataParallel`, or `shard_map` for
what an unsynchronized step computes."""

import numpy as np

from contrastive.distribute.base import Distribution
from contrastive.distribute.jax_backend import JaxDistribution, shutdown


def _loss_and_state(model, trainable, non_trainable, images):
    outputs, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
    return model.objective(outputs), non_trainable


def check_step(build_model, images, replicas, sync_batchnorm=True, gather_negatives=True):
    """One step of the model `build_model()` returns on the global batch
    `images`: on one device (`replicas` 1), on `replicas` devices with
    DataParallel (sync on), or per device under `shard_map` (sync off).

    Returns:
        `{"loss": float, "grads": [arrays], "stats": [arrays]}`: gradients
        of the trainable variables and the non-trainable variables (batch-norm
        moving statistics) after the step, in the model's variable order;
        with per-device batch norm, replica 0's statistics.
    """
    import jax
    import keras

    if replicas == 1:
        model = build_model()
        return _step_single(model, images)
    if sync_batchnorm and gather_negatives:
        dist = JaxDistribution(devices=replicas)
        with dist.scope():
            model = build_model()
            dist.prepare(model)
            trainable = [v.value for v in model.trainable_variables]
            non_trainable = [v.value for v in model.non_trainable_variables]
            layout = dist.distribution.get_data_layout(images.shape)
            x = keras.distribution.distribute_tensor(images, layout)
            assert len(x.sharding.device_set) == replicas, x.sharding
            grad_fn = jax.jit(jax.value_and_grad(
                lambda tv, ntv, x: _loss_and_state(model, tv, ntv, x), has_aux=True))
            (loss, stats), grads = grad_fn(trainable, non_trainable, x)
        return _numpy(loss, grads, stats)
    return _step_shard_map(build_model(), images, replicas, sync_batchnorm, gather_negatives)


def process_step(build_model, images, sync_batchnorm=True, gather_negatives=True):
    """This process' part of one step over several processes, joined by
    `keras.distribution.initialize` (`KERAS_DISTRIBUTION_*`): it feeds only
    its rows of `images` (the global batch), and the compiled step sees the
    global array assembled from every process' rows.

    Returns:
        `(result, is_chief)`, `result` as `check_step`'s.
    """
    import jax

    dist = JaxDistribution()
    with dist.scope():
        model = build_model()
        dist.prepare(model)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        x = dist.global_batch(images[dist.process_rows(images.shape[0])])
        if sync_batchnorm and gather_negatives:
            grad_fn = jax.jit(jax.value_and_grad(
                lambda tv, ntv, x: _loss_and_state(model, tv, ntv, x), has_aux=True))
            (loss, stats), grads = grad_fn(trainable, non_trainable, x)
        else:
            loss, grads, stats = _shard_map(model, trainable, non_trainable, x,
                                            dist.num_replicas, gather_negatives)
        result = _numpy(loss, grads, stats)
    chief = dist.is_chief
    shutdown()  # waits for every process
    return result, chief


def _step_single(model, images):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    grad_fn = jax.jit(jax.value_and_grad(
        lambda tv, ntv, x: _loss_and_state(model, tv, ntv, x), has_aux=True))
    (loss, stats), grads = grad_fn(trainable, non_trainable, images)
    return _numpy(loss, grads, stats)


class _PerDevice(Distribution):
    """What a per-replica data-parallel engine gives a method inside
    `shard_map`: gathers over the mesh axis `batch`."""

    def __init__(self, replicas, gather_negatives):
        super().__init__(replicas, sync_batchnorm=False, gather_negatives=gather_negatives)
        self.num_replicas = replicas

    def replica_id(self):
        import jax

        return jax.lax.axis_index("batch")

    def gather(self, x):
        import jax

        return jax.lax.all_gather(x, "batch", axis=0, tiled=True)


def _step_shard_map(model, images, replicas, sync_batchnorm, gather_negatives):
    """Each device runs the model on its shard (its own batch-norm
    statistics unless synchronized), gathers every device's rows with
    `jax.lax.all_gather` (gradient: `psum_scatter`) where the method asks,
    and gradients are averaged with `pmean`: what a per-replica
    data-parallel engine does."""
    if sync_batchnorm:
        raise NotImplementedError("synchronized batch norm on jax is the DataParallel path")
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    loss, grads, stats = _shard_map(model, trainable, non_trainable, images, replicas,
                                    gather_negatives)
    return _numpy(loss, grads, stats)


def _shard_map(model, trainable, non_trainable, images, replicas, gather_negatives):
    """`(loss, grads, stats)`: per-device batch norm, replica 0's
    statistics."""
    import jax
    from jax.sharding import Mesh, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()[:replicas]), ("batch",))

    def local(tv, ntv, x):
        model.connect(_PerDevice(replicas, gather_negatives))
        (loss, stats), grads = jax.value_and_grad(
            lambda t: _loss_and_state(model, t, ntv, x), has_aux=True)(tv)
        model.connect(Distribution())
        grads = jax.lax.pmean(grads, "batch")
        loss = jax.lax.pmean(loss, "batch")
        return loss, grads, [s[None] for s in stats]

    mapped = jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(), P("batch")), out_specs=(P(), P(), P("batch")),
    )
    loss, grads, stats = jax.jit(mapped)(trainable, non_trainable, images)
    # Replica 0's rows: on device 0, which process 0 (the chief) holds.
    return loss, grads, [_local(s)[0] for s in stats]


def _local(x):
    """The value of `x` this process can read: all of it, or, for an array
    spread over several processes, the rows of its first local device."""
    if getattr(x, "is_fully_addressable", True):
        return np.asarray(x)
    return np.asarray(x.addressable_shards[0].data)


def _numpy(loss, grads, stats):
    return {
        "loss": float(_local(loss)),
        "grads": [_local(g).astype(np.float64) for g in grads],
        "stats": [_local(s).astype(np.float64) for s in stats],
    }
