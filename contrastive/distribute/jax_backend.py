"""JAX: `keras.distribution.DataParallel` over a device mesh.

The compiled step is one SPMD program over the global batch: the batch is
sharded along the mesh's batch axis, the variables are replicated, and XLA
inserts the collectives. A loss over the batch is therefore already the
global loss (every device's projections are negatives, no gather needed) and
batch-norm statistics are already global (synchronized batch norm by
construction). Several hosts: `keras.distribution.initialize` (which calls
`jax.distributed.initialize`) from the `KERAS_DISTRIBUTION_*` variables.

Per-device batch norm and local negatives (sync_batchnorm or
gather_negatives off) do not exist in that program; the check builds them
with `jax.shard_map` to show what an unsynchronized step computes.
"""

import contextlib
import os
import warnings

import numpy as np

from contrastive.distribute.base import Distribution
from contrastive.errors import SpecError


def initialize_multihost():
    """Joins the other hosts when `KERAS_DISTRIBUTION_NUM_PROCESSES` > 1
    (with `KERAS_DISTRIBUTION_JOB_ADDRESSES` and
    `KERAS_DISTRIBUTION_PROCESS_ID`); call before any computation."""
    import keras

    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1)
    if processes > 1:
        keras.distribution.initialize()
    return processes


class JaxDistribution(Distribution):
    """Data parallelism over `devices` devices (default all) with Keras'
    DataParallel distribution."""

    strategy = "data_parallel"

    def __init__(self, devices=None, sync_batchnorm=True, gather_negatives=True):
        super().__init__(devices, sync_batchnorm, gather_negatives)
        import keras

        self.processes = initialize_multihost()
        found = keras.distribution.list_devices()
        wanted = len(found) if devices is None else int(devices)
        if wanted > len(found):
            raise SpecError(
                f"expected at most the {len(found)} devices jax sees, received {wanted} "
                "(on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N simulates N)",
                "distribute.devices",
            )
        self.device_names = found[:wanted]
        self.num_replicas = wanted
        self.distribution = keras.distribution.DataParallel(devices=self.device_names)

    @property
    def is_chief(self):
        import jax

        return jax.process_index() == 0

    @contextlib.contextmanager
    def scope(self):
        import keras

        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(self.distribution)
        try:
            yield self
        finally:
            keras.distribution.set_distribution(previous)

    def prepare(self, model):
        if not self.sync_batchnorm:
            warnings.warn(
                "distribute.sync_batchnorm=false has no effect on jax: the data-parallel "
                "step computes batch-norm statistics over the global batch",
                stacklevel=2,
            )
        if not self.gather_negatives:
            warnings.warn(
                "distribute.gather_negatives=false has no effect on jax: the data-parallel "
                "step computes the loss over the global batch",
                stacklevel=2,
            )
        # The loss sees the global batch: no gather, offset 0.
        loss = getattr(model, "contrastive_loss", None)
        if loss is not None and hasattr(loss, "gather"):
            loss.gather = None
            loss.replica_offset = 0
        return model


# The check: one step, loss, gradients and batch-norm statistics ------------


def _loss_and_state(model, trainable, non_trainable, images):
    outputs, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
    z = outputs["z"]
    n = z.shape[0] // 2
    return model.contrastive_loss(z[:n], z[n:]), non_trainable


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


def _step_single(model, images):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    grad_fn = jax.jit(jax.value_and_grad(
        lambda tv, ntv, x: _loss_and_state(model, tv, ntv, x), has_aux=True))
    (loss, stats), grads = grad_fn(trainable, non_trainable, images)
    return _numpy(loss, grads, stats)


def _step_shard_map(model, images, replicas, sync_batchnorm, gather_negatives):
    """Each device runs the model on its shard (its own batch-norm
    statistics unless synchronized), the loss gathers every device's keys
    with `jax.lax.all_gather` (gradient: `psum_scatter`), and gradients are
    averaged with `pmean`: what a per-replica data-parallel engine does."""
    import jax
    from jax.sharding import Mesh, PartitionSpec as P

    if sync_batchnorm:
        raise NotImplementedError("synchronized batch norm on jax is the DataParallel path")
    mesh = Mesh(np.array(jax.devices()[:replicas]), ("batch",))
    loss_obj = model.contrastive_loss
    n = images.shape[0] // replicas
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def local(tv, ntv, x):
        if gather_negatives:
            loss_obj.gather = lambda z: jax.lax.all_gather(z, "batch", axis=0, tiled=True)
            loss_obj.replica_offset = lambda: jax.lax.axis_index("batch") * n
        (loss, stats), grads = jax.value_and_grad(
            lambda t: _loss_and_state(model, t, ntv, x), has_aux=True)(tv)
        loss_obj.gather, loss_obj.replica_offset = None, 0
        grads = jax.lax.pmean(grads, "batch")
        loss = jax.lax.pmean(loss, "batch")
        return loss, grads, [s[None] for s in stats]

    mapped = jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(), P("batch")), out_specs=(P(), P(), P("batch")),
    )
    loss, grads, stats = jax.jit(mapped)(trainable, non_trainable, images)
    return _numpy(loss, grads, [s[0] for s in stats])


def _numpy(loss, grads, stats):
    return {
        "loss": float(np.asarray(loss)),
        "grads": [np.asarray(g, dtype=np.float64) for g in grads],
        "stats": [np.asarray(s, dtype=np.float64) for s in stats],
    }
