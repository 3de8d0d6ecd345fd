"""JAX: `keras.distribution.DataParallel` over a device mesh.

The compiled step is one SPMD program over the global batch: the batch is
sharded along the mesh's batch axis, the variables are replicated, and XLA
inserts the collectives. A loss over the batch is therefore already the
global loss (every device's projections are negatives, no gather needed) and
batch-norm statistics are already global (synchronized batch norm by
construction). Several hosts: `jax.distributed.initialize` from the
`KERAS_DISTRIBUTION_*` variables, as `keras.distribution.initialize` calls
it, with a short heartbeat timeout and recoverable tasks, so that a process
that dies is seen by the others (`watch`) instead of blocking them.

Per-device batch norm and local negatives (sync_batchnorm or
gather_negatives off) do not exist in that program; the check builds them
with `jax.shard_map` to show what an unsynchronized step computes.
"""

import atexit
import contextlib
import itertools
import os
import threading
import time
import warnings

from contrastive.distribute.base import Distribution
from contrastive.distribute.jax_supervisor import write_note
from contrastive.errors import ProcessLost, SpecError

# Seconds without a heartbeat after which the coordination service counts a
# process as dead (jax's default is 100); heartbeats come from a thread of
# jax's own, whatever the process computes.
HEARTBEAT_SECONDS = 10
# How long every process waits for the others at the end of training (a
# process that dies meanwhile is seen by the watchdog), and the coordinator
# at exit for the others to disconnect (jax's shutdown timeout).
BARRIER_MS = 600_000
EXIT_SECONDS = 300


def initialize_multihost():
    """Joins the other hosts when `KERAS_DISTRIBUTION_NUM_PROCESSES` > 1
    (with `KERAS_DISTRIBUTION_JOB_ADDRESSES` and
    `KERAS_DISTRIBUTION_PROCESS_ID`); call before any computation."""
    import jax

    processes = int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1)
    if processes > 1 and not jax.distributed.is_initialized():
        # Collectives between CPU processes (a no-op for accelerators).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        _initialize(processes)
    return processes


def _initialize(processes):
    """`keras.distribution.initialize` (keras/src/backend/jax/
    distribution_lib.py): `jax.distributed.initialize` with the
    coordinator's address, then one random seed for every process; with a
    heartbeat timeout of `HEARTBEAT_SECONDS` and recoverable tasks where
    this jax has them, so that a dead process is reported as not alive
    instead of the coordination service ending every process from C++."""
    import inspect

    import jax
    import keras
    from keras.src.backend.jax import distribution_lib

    if ("heartbeat_timeout_seconds" not in inspect.signature(jax.distributed.initialize).parameters
            or not hasattr(jax.config, "jax_enable_recoverability")):
        keras.distribution.initialize()
        return
    addresses = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
    process_id = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    jax.config.update("jax_enable_recoverability", True)
    jax.distributed.initialize(addresses.split(",")[0] if addresses else None, processes,
                               int(process_id) if process_id else None,
                               heartbeat_timeout_seconds=HEARTBEAT_SECONDS)
    atexit.register(_outlive_others)
    distribution_lib.initialize_rng()
    if jax.process_index() != 0:
        write_note({"who": coordinator_lost(processes, addresses.split(",")[0]
                                            if addresses else "?")})


def _client():
    """jax's coordination client (as `jax.experimental.multihost_utils`
    reaches it), or None on one process or with an older jax."""
    import jax

    if not getattr(jax.config, "jax_enable_recoverability", False):
        return None
    from jax._src import distributed

    return distributed.global_state.client


def _outlive_others():
    """At exit, before jax's shutdown (atexit runs this first): the
    coordinator waits until every other process has disconnected. Jax's
    shutdown barrier skips recoverable tasks, and a process whose client
    outlives the coordinator's service is aborted from C++."""
    import jax

    client = _client()
    if client is None or jax.process_index() != 0:
        return
    everyone = list(range(jax.process_count()))
    deadline = time.monotonic() + EXIT_SECONDS
    while time.monotonic() < deadline:
        try:
            if set(client.get_live_nodes(everyone)) == {0}:
                return
        except Exception:  # noqa: BLE001 (nothing left to wait for)
            return
        time.sleep(0.1)


def shutdown():
    """`jax.distributed.shutdown`, on the coordinator once every other
    process has disconnected: the wait that jax's shutdown barrier does for
    tasks that are not recoverable."""
    import jax

    _outlive_others()
    jax.distributed.shutdown()


def _barrier(name):
    """Waits until every process reaches the barrier `name` (or a failure:
    a lost process is the watchdog's to report)."""
    client = _client()
    if client is not None:
        with contextlib.suppress(Exception):
            client.wait_at_barrier(name, BARRIER_MS)


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

    def watch(self, explain):
        """See `Distribution.watch`. A `Watchdog` asks the coordination
        service every second which processes are alive; a collective that
        fails waits for its verdict. Without recoverable tasks (an older
        jax), watches nothing."""
        client = _client()
        if self.num_processes == 1 or client is None:
            return contextlib.nullcontext()
        return Watchdog(client, self.process_index, self.num_processes,
                        os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",")[0],
                        explain)

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


def coordinator_lost(processes, coordinator):
    """`who` (see `Distribution.watch`) for a lost coordinator."""
    return f"process 0 of {processes} (the coordinator, {coordinator}) stopped responding"


_watches = itertools.count()
# Held by the thread that reports a lost process, until the process exits.
_stopping = threading.Lock()


def stop(line):
    """Writes `error: LINE` to stderr and ends the process with status 1, at
    once: the survivors of a lost process cannot finish a collective, and
    jax would end them from C++ (without a line of ours) a moment later."""
    _stopping.acquire()
    os.write(2, f"error: {line}\n".encode(errors="replace"))
    os._exit(1)


class Watchdog:
    """While training: a thread that stops this process (`stop`) when the
    coordination service reports another as not alive (no heartbeat for
    `HEARTBEAT_SECONDS`). The coordinator's own death is not seen here:
    jax's client then ends the process from C++ at once (the service is
    unreachable); the process' supervisor (`jax_supervisor`) prints the
    line from the note this watchdog keeps. On leaving, every process waits
    for the others, so that none is taken for dead for having finished
    first.

    Args:
        client: jax's coordination client.
        process: this process' index.
        processes: how many processes the run has.
        coordinator: the coordinator's `host:port`.
        explain: `who -> line`, see `Distribution.watch`.
    """

    def __init__(self, client, process, processes, coordinator, explain):
        self.client = client
        self.process = process
        self.processes = processes
        self.coordinator = coordinator
        self.explain = explain
        self._done = threading.Event()
        self._note = None
        self._thread = threading.Thread(target=self._run, name="contrastive-watchdog",
                                        daemon=True)

    def lost(self):
        """`who` for the processes the service no longer counts alive, or
        None when all are."""
        try:
            live = self.client.get_live_nodes(list(range(self.processes)))
        except Exception:  # noqa: BLE001 (any failure: the service is gone)
            return self._coordinator_lost()
        missing = [p for p in range(self.processes) if p not in live]
        if not missing:
            return None
        names = ", ".join(map(str, missing))
        return (f"process{'es' if len(missing) > 1 else ''} {names} of {self.processes} "
                f"stopped responding")

    def _coordinator_lost(self):
        return coordinator_lost(self.processes, self.coordinator)

    def _keep_note(self):
        """Under a supervisor (`jax_supervisor`), what the line for a lost
        coordinator needs (`LostProcess.note`): this process cannot print it
        then."""
        note = getattr(self.explain, "note", None)
        if self.process == 0 or note is None:
            return
        note = note(self._coordinator_lost())
        if note != self._note:  # it changes once an epoch
            write_note(note)
            self._note = note

    def _run(self):
        while not self._done.wait(1.0):
            self._keep_note()
            who = self.lost()
            if who is not None and not self._done.is_set():
                stop(self.explain(who))

    def __enter__(self):
        self._keep_note()
        self._thread.start()
        return self

    def __exit__(self, kind, exc, tb):
        try:
            if kind is None:
                _barrier(f"contrastive-watch-{next(_watches)}")
            elif _runtime_error(exc):
                self._wait_for_verdict(exc)
        finally:
            self._done.set()
        return False

    def _wait_for_verdict(self, exc):
        """A collective failed: stops the process when another is lost
        (found within the heartbeat timeout); raises `ProcessLost` when the
        error says a connection broke; otherwise lets `exc` go on."""
        deadline = time.monotonic() + HEARTBEAT_SECONDS + 5
        while time.monotonic() < deadline:
            who = self.lost()
            if who is not None:
                stop(self.explain(who))
            time.sleep(0.5)
        text = " ".join(str(exc).split())
        if "peer" in text or "onnection" in text:
            raise ProcessLost(self.explain(
                f"process {self.process} of {self.processes} lost its connection to the "
                f"others ({text[:300]})")) from exc


def _runtime_error(exc):
    """Whether `exc` is jax's runtime error (`JaxRuntimeError`, before jax
    0.8 `XlaRuntimeError`), which a failed collective raises."""
    return any(t.__name__ in ("JaxRuntimeError", "XlaRuntimeError") for t in type(exc).__mro__)
