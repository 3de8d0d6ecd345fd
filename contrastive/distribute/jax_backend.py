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

from contrastive.distribute.base import Distribution
from contrastive.errors import SpecError


def initialize_multihost():
    """Joins the other hosts when `KERAS_DISTRIBUTION_NUM_PROCESSES` > 1
    (with `KERAS_DISTRIBUTION_JOB_ADDRESSES` and
    `KERAS_DISTRIBUTION_PROCESS_ID`); call before any computation."""
    import jax
    import keras

    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1)
    if processes > 1 and not jax.distributed.is_initialized():
        # Collectives between CPU processes (a no-op for accelerators).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize()
    return processes


def process_commands(program, processes, devices, addresses):
    """How to start `program` (the arguments after `python`) on `processes`
    hosts: `[(environment, argv)]`, one per process. `addresses`: one
    `host:port` per process (only the first, the coordinator's, is used).
    `devices` is not set here: each process uses every local device (on a
    CPU, `XLA_FLAGS=--xla_force_host_platform_device_count=N` simulates N)."""
    del devices
    return [
        ({"KERAS_DISTRIBUTION_JOB_ADDRESSES": addresses[0],
          "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
          "KERAS_DISTRIBUTION_PROCESS_ID": str(i)},
         ["python", *program])
        for i in range(processes)
    ]


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
        # The inputs read their own process' rows (`process_rows`).
        self.distribution.auto_shard_dataset = False

    @property
    def is_chief(self):
        return self.process_index == 0

    @property
    def num_processes(self):
        import jax

        return jax.process_count()

    @property
    def process_index(self):
        import jax

        return jax.process_index()

    def global_batch(self, local):
        """One global array, sharded over the mesh's batch axis, assembled
        from every process' rows (`jax.make_array_from_process_local_data`);
        `local` as it is on one process."""
        import jax

        if self.num_processes == 1:
            return local
        layout = self.distribution.get_data_layout((local.shape[0] * self.num_processes,
                                                    *local.shape[1:]))
        return jax.make_array_from_process_local_data(layout.backend_layout, local)

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
        model.connect(self)
        return model

    def wire_loss(self, loss):
        """The compiled step sees the global batch: the loss gathers nothing
        (offset 0)."""
        if loss is not None and hasattr(loss, "gather"):
            loss.gather = None
            loss.replica_offset = 0
