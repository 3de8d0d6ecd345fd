"""TensorFlow: `tf.distribute` (Mirrored, MultiWorkerMirrored, TPU).

Each replica runs the step on its slice of the global batch; Keras'
`BatchNormalization(synchronized=True)` all-reduces the sums, sums of
squares and counts (with gradient) across replicas, the loss gathers every
replica's projections with `ReplicaContext.all_gather` (whose gradient sums
the replicas' contributions), and the strategy sums the replicas' gradients;
the loss is scaled by 1 / replicas (Keras' `Loss` reduction does it), so the
sum is the gradient of the global mean.

Strategy chosen: `TPUStrategy` when `TPU_NAME` is set,
`MultiWorkerMirroredStrategy` when `TF_CONFIG` is set, else
`MirroredStrategy` over the GPUs, or over logical CPU devices on a machine
without GPUs (which must be configured before TensorFlow initialises its
devices: `configure_logical_cpus`). Over several workers each worker's
rows reach its own replicas (`tensorflow_fit.worker_dataset`), and the
`device` input is refused (`device_input_problem`).
"""

import contextlib
import os
import re

from contrastive.distribute.base import Distribution
from contrastive.distribute.tensorflow_fit import (
    mend_fit,
    synchronize_batch_norm,
    worker_dataset,
)
from contrastive.errors import ProcessLost, SpecError

# How a collective reports the connection to a peer broken.
_BROKEN_CONNECTION = re.compile(
    r"(?i)reset by peer|connection (closed|reset|refused)|socket closed")


def configure_logical_cpus(count):
    """Splits the CPU into `count` logical devices. Returns whether
    TensorFlow now has at least `count` CPU devices (False when its devices
    were initialised already with fewer)."""
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        current = tf.config.get_logical_device_configuration(cpus[0]) or []
        if len(current) < count:
            tf.config.set_logical_device_configuration(
                cpus[0], [tf.config.LogicalDeviceConfiguration()] * count
            )
    except RuntimeError:
        pass
    return len(tf.config.list_logical_devices("CPU")) >= count


def process_commands(program, processes, devices, addresses):
    """How to start `program` (the arguments after `python`) on `processes`
    workers of a `MultiWorkerMirroredStrategy`: `[(environment, argv)]`,
    one per worker, each with `TF_CONFIG` naming every worker's `host:port`
    in `addresses` and its own index; worker 0 is the chief. Each worker
    uses its local GPUs (`devices` is theirs to count), else one CPU."""
    import json

    del devices
    return [
        ({"TF_CONFIG": json.dumps({"cluster": {"worker": list(addresses[:processes])},
                                   "task": {"type": "worker", "index": i}})},
         ["python", *program])
        for i in range(processes)
    ]


_STRATEGIES = {}


def make_strategy(devices=None):
    """The strategy for `devices` devices; one per process and device count
    (two strategies over the same devices in one process confuse the keys
    of their collective ops)."""
    if devices not in _STRATEGIES:
        _STRATEGIES[devices] = _new_strategy(devices)
    return _STRATEGIES[devices]


def _new_strategy(devices):
    import tensorflow as tf

    if os.environ.get("TPU_NAME"):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=os.environ["TPU_NAME"])
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if os.environ.get("TF_CONFIG"):
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        found = strategy.num_replicas_in_sync
        if devices is not None and int(devices) != found:
            raise SpecError(
                f"expected null or {found} (under TF_CONFIG every worker uses all its "
                f"devices: {found} in all), received {devices}", "distribute.devices")
        return strategy
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        wanted = len(gpus) if devices is None else int(devices)
        if wanted > len(gpus):
            raise SpecError(
                f"expected at most the {len(gpus)} GPUs tensorflow sees, received {wanted}",
                "distribute.devices",
            )
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(wanted)])
    wanted = 1 if devices is None else int(devices)
    if wanted > 1 and not configure_logical_cpus(wanted):
        raise SpecError(
            f"tensorflow initialised its devices before {wanted} logical CPU devices "
            "could be configured; create the distribution before any TensorFlow op",
            "distribute.devices",
        )
    cpus = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in cpus[:wanted]])


class TensorFlowDistribution(Distribution):
    """A `tf.distribute` strategy with synchronized batch norm and a gathered
    loss."""

    strategy = "mirrored"

    def __init__(self, devices=None, sync_batchnorm=True, gather_negatives=True):
        super().__init__(devices, sync_batchnorm, gather_negatives)
        self.tf_strategy = make_strategy(devices)
        self.num_replicas = int(self.tf_strategy.num_replicas_in_sync)

    @property
    def is_chief(self):
        resolver = getattr(self.tf_strategy, "cluster_resolver", None)
        if resolver is None or not getattr(resolver, "task_type", None):
            return True
        return resolver.task_type in ("chief", None) or (
            resolver.task_type == "worker" and resolver.task_id == 0
        )

    @property
    def num_processes(self):
        resolver = getattr(self.tf_strategy, "cluster_resolver", None)
        spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
        return sum(len(tasks) for name, tasks in spec.items()
                   if name in ("chief", "worker")) or 1

    @property
    def process_index(self):
        resolver = getattr(self.tf_strategy, "cluster_resolver", None)
        if resolver is None or self.num_processes == 1:
            return 0
        spec = resolver.cluster_spec().as_dict()
        chiefs = len(spec.get("chief", []))
        return resolver.task_id + (chiefs if resolver.task_type == "worker" else 0)

    def replica_id(self):
        import tensorflow as tf

        return tf.distribute.get_replica_context().replica_id_in_sync_group

    def replica_rows(self):
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        # Cross-replica (None: building, restoring) or outside the strategy,
        # a call sees its whole batch.
        if context is None or context.num_replicas_in_sync == 1:
            return None
        return (context.num_replicas_in_sync, context.replica_id_in_sync_group)

    def gather(self, x):
        import tensorflow as tf

        context = tf.distribute.get_replica_context()
        if context is None or self.num_replicas == 1:
            return x
        return context.all_gather(x, axis=0)

    @contextlib.contextmanager
    def watch(self, explain):
        """See `Distribution.watch`: when a worker stops, the strategy's
        health checks abort the others' collectives with an
        `UnavailableError` naming the tasks that stopped sending heartbeats
        ("/job:worker/replica:0/task:1"); that becomes `ProcessLost`."""
        import tensorflow as tf

        try:
            yield
        except tf.errors.UnavailableError as exc:
            if self.num_processes == 1:
                raise
            raise ProcessLost(explain(self._lost(str(exc)))) from exc

    def _lost(self, message):
        """`who` for `watch` from the error's text: the unhealthy tasks as
        process indices; else, of two processes whose connection broke, the
        other one (the collective can fail on the broken connection before
        the health check names the task); else this process' lost connection."""
        chiefs = len(self.tf_strategy.cluster_resolver.cluster_spec().as_dict().get("chief", []))
        _, marker, unhealthy = message.partition("unhealthy")
        tasks = re.findall(r"/job:(chief|worker)/replica:\d+/task:(\d+)", unhealthy if marker else "")
        found = sorted({int(index) + (chiefs if kind == "worker" else 0) for kind, index in tasks})
        if not found and self.num_processes == 2 and _BROKEN_CONNECTION.search(message):
            found = [1 - self.process_index]
        if found:
            names = ", ".join(map(str, found))
            return (f"process{'es' if len(found) > 1 else ''} {names} of {self.num_processes} "
                    "stopped responding")
        return (f"process {self.process_index} of {self.num_processes} lost its connection to "
                f"the others ({' '.join(message.split())[:200]})")

    @contextlib.contextmanager
    def scope(self):
        with self.tf_strategy.scope():
            yield self

    def prepare(self, model):
        """Synchronized batch norm, the loss' gather, and the steps of
        Keras' `fit` this strategy needs mended (`tensorflow_fit.mend_fit`)."""
        synchronize_batch_norm(model, self.sync_batchnorm)
        model.connect(self)
        mend_fit(model, self)
        return model

    @property
    def device_input_problem(self):
        if self.num_processes == 1:
            return None
        return ("a MultiWorkerMirroredStrategy broadcasts the chief's value of each new "
                "variable to the other workers, and its collectives do not carry the uint8 "
                "images the device input holds in one")

    def distribute_input(self, arguments):
        """On several workers, `x` as a distributed dataset whose replicas
        each receive their rows of this worker's share (see
        `tensorflow_fit.worker_dataset`); on one, as it is: `fit` splits
        the global batch over the replicas itself."""
        if self.num_processes == 1:
            return arguments
        return {**arguments, "x": worker_dataset(self.tf_strategy, arguments["x"])}
