"""The backend-neutral interface of the distribution layer.

Only `jax_backend.py`, `tensorflow_backend.py` (with `tensorflow_fit.py`) and
`torch_backend.py` import backend-specific modules, lazily, when `from_spec`
picks them.

How a run uses it (see `contrastive.training.train`):

    dist = from_spec(spec.distribute)
    with dist.scope():                 # building, compiling and fitting
        parts = build_parts(spec)
        model = SimCLR(...)
        dist.prepare(model)            # sync batch norm, loss gather
        model.compile(...)
        model.fit(**dist.distribute_input(parts.input.fit_arguments(...)), ...)

`contrastive.distribute.check` holds the check of one step on N devices
against one device, one small file per backend.
"""

import contextlib
import dataclasses
import os

from contrastive.errors import SpecError

STRATEGIES = ("none", "auto", "data_parallel", "mirrored", "ddp")
# The strategy each backend runs, and the backend each strategy needs.
AUTO = {"jax": "data_parallel", "tensorflow": "mirrored", "torch": "ddp"}
NEEDS = {"data_parallel": "jax", "mirrored": "tensorflow", "ddp": "torch"}


class Distribution:
    """One device, no distribution; the base of the real implementations.

    Attributes:
        strategy: the strategy's name (`none`, `data_parallel`, `mirrored`,
            `ddp`).
        num_replicas: how many replicas share the global batch.
        sync_batchnorm: batch-norm statistics over the global batch.
        gather_negatives: every replica's projections are negatives.
    """

    strategy = "none"

    def __init__(self, devices=None, sync_batchnorm=True, gather_negatives=True):
        self.devices = devices
        self.sync_batchnorm = bool(sync_batchnorm)
        self.gather_negatives = bool(gather_negatives)
        self.num_replicas = 1

    # The process' facts --------------------------------------------------

    @property
    def num_processes(self):
        """How many processes share the run (one per host, or one per
        device under torchrun)."""
        return 1

    @property
    def process_index(self):
        """This process' index in `0 .. num_processes - 1`; process `p`
        holds replicas `p * local .. (p + 1) * local - 1`."""
        return 0

    def process_rows(self, batch_size):
        """The rows of each global batch of `batch_size` this process feeds:
        the contiguous `slice` of its replicas, the same whatever the number
        of processes (2 processes x 2 devices feed the rows 1 process x 4
        devices does)."""
        if batch_size % self.num_processes:
            raise SpecError(
                f"expected a global batch divisible by the {self.num_processes} processes, "
                f"received {batch_size}",
                "train.batch_size",
            )
        n = batch_size // self.num_processes
        return slice(self.process_index * n, (self.process_index + 1) * n)

    def global_batch(self, local):
        """The global batch the step computes on, from this process' rows
        `local` (`process_rows`); on one process, `local` itself."""
        return local

    # The replica's facts -------------------------------------------------

    def replica_id(self):
        """This replica's index in `0 .. num_replicas - 1` (a tensor inside
        a replica's step where the backend needs one)."""
        return 0

    def replica_rows(self):
        """`(replicas, this replica's index)` where each replica runs the
        step on its own rows of the global batch (torch DDP,
        tf.distribute): random per-image draws are then made for the global
        batch, each replica keeping its rows (`Augmenter.sample_rows`).
        None where the step sees the whole global batch (one device, jax).
        """
        return None

    @property
    def is_chief(self):
        """Whether this process writes the run directory."""
        return True

    def gather(self, x):
        """Every replica's rows of `x`, `(n, ...) -> (n * replicas, ...)` in
        replica order, with gradient flowing back to each replica's rows."""
        return x

    # Running under the strategy -----------------------------------------

    @contextlib.contextmanager
    def scope(self):
        """The context in which the model is built, compiled and fitted."""
        yield self

    def prepare(self, model):
        """Adapts a built-or-unbuilt method (`contrastive.methods.Method`)
        to the strategy (batch norm, `model.connect(self)`, which wires the
        gathers); call before `compile`. Returns the model."""
        model.connect(self)
        return model

    @contextlib.contextmanager
    def watch(self, explain):
        """The context in which the processes train together: when another
        process stops (killed, crashed, out of reach), this one stops too,
        in bounded time, with one line `explain(who)` (`who`: e.g. "process
        1 of 2 stopped responding"), instead of waiting in a collective:
        `ProcessLost` raised, or, where the backend's engine would end the
        process first, the line on stderr and exit status 1. One process
        watches nothing."""
        del explain
        yield

    @property
    def device_input_problem(self):
        """None, or why `train.input: device` cannot run under this
        distribution (`auto` then picks `memory`)."""
        return None

    def distribute_input(self, arguments):
        """The arguments of `fit` that carry the data
        (`TrainingInput.fit_arguments`: this process' rows of each global
        batch) in the form the strategy's `fit` takes them; by default as
        they are."""
        return arguments

    @property
    def needs_launch(self):
        """More processes are wanted than this one has started (torchrun)."""
        return False

    def launch_command(self, argv):
        """The command that starts this run on every device, when the
        strategy needs more processes than the current one (torch), else
        None. `argv`: the command line of this process, without the
        interpreter."""
        return None

    def check_batch_size(self, batch_size):
        """Raises SpecError unless the global batch splits evenly."""
        if batch_size % self.num_replicas:
            raise SpecError(
                f"expected a global batch divisible by the {self.num_replicas} "
                f"replicas, received {batch_size}",
                "train.batch_size",
            )

    def describe(self):
        return (
            f"distribute: {self.strategy} over {self.num_replicas} replica(s), "
            f"sync_batchnorm={self.sync_batchnorm}, gather_negatives={self.gather_negatives}"
        )

    # Shared helpers -------------------------------------------------------

    def wire_loss(self, loss):
        """Sets the loss' `gather` and `replica_offset` hooks so that each
        replica's anchors meet every replica's keys (see
        `contrastive.losses.base`). With `gather_negatives` off, or on one
        replica, the loss uses its local keys only."""
        if loss is None or not hasattr(loss, "gather"):
            return
        if not self.gather_negatives or self.num_replicas == 1:
            loss.gather = None
            loss.replica_offset = 0
            return
        from keras import ops

        rows = {}

        def gather(z):
            rows["n"] = ops.shape(z)[0]
            return self.gather(z)

        def offset():
            # The loss gathers before it asks for the offset.
            return self.replica_id() * rows["n"]

        loss.gather = gather
        loss.replica_offset = offset


def batch_norm_layers(model):
    """Every `keras.layers.BatchNormalization` inside `model`."""
    import keras

    return [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def _section(section):
    if section is None:
        return {}
    if dataclasses.is_dataclass(section):
        return dataclasses.asdict(section)
    return dict(section)


def resolve_strategy(strategy, backend):
    """The strategy `auto` stands for on `backend`; checks the pairing."""
    if strategy not in STRATEGIES:
        raise SpecError(
            f"expected one of {', '.join(STRATEGIES)}, received {strategy!r}",
            "distribute.strategy",
        )
    if strategy == "auto":
        return AUTO[backend]
    if strategy != "none" and NEEDS[strategy] != backend:
        raise SpecError(
            f"{strategy} runs on the {NEEDS[strategy]} backend, this run uses {backend} "
            f"(use auto, or {AUTO[backend]})",
            "distribute.strategy",
        )
    return strategy


def from_spec(section=None, backend=None):
    """The distribution the spec's `distribute` section describes.

    Args:
        section: the `distribute` mapping (or `DistributeSection`): strategy,
            devices, sync_batchnorm, gather_negatives.
        backend: the Keras backend; default the current one.

    Returns:
        A `Distribution`: the trivial one for strategy `none`.

    Raises:
        SpecError: a strategy of another backend, more devices than exist,
            or a wrong variable of those the engine reads to join several
            processes (`contrastive.distribute.environment`).
    """
    data = _section(section)
    if backend is None:
        import keras

        backend = keras.backend.backend()
    strategy = resolve_strategy(data.get("strategy", "none"), backend)
    kwargs = {
        "devices": data.get("devices"),
        "sync_batchnorm": data.get("sync_batchnorm", True),
        "gather_negatives": data.get("gather_negatives", True),
    }
    if strategy == "none":
        return Distribution(**kwargs)
    from contrastive.distribute.environment import check_environment

    check_environment(backend)
    if backend == "jax":
        from contrastive.distribute.jax_backend import JaxDistribution

        return JaxDistribution(**kwargs)
    if backend == "tensorflow":
        from contrastive.distribute.tensorflow_backend import TensorFlowDistribution

        return TensorFlowDistribution(**kwargs)
    from contrastive.distribute.torch_backend import TorchDistribution

    return TorchDistribution(**kwargs)


def machine_commands(backend, argv, machines=2, port=29500):
    """The shell commands that start `argv` (a `contrastive` command line)
    on `machines` machines with `backend`'s own engine, one per machine,
    addresses as placeholders (`HOST0` is the first machine's, the
    coordinator's): `keras.distribution.initialize`'s variables (jax),
    `TF_CONFIG` (tensorflow), torchrun with c10d rendezvous (torch).

    Example:
        >>> machine_commands("torch", ["train", "spec.yaml"])[0].split()[:3]
        ['torchrun', '--nnodes=2', '--nproc-per-node=gpu']
    """
    import shlex

    if backend == "jax":
        from contrastive.distribute.jax_backend import process_commands
    elif backend == "tensorflow":
        from contrastive.distribute.tensorflow_backend import process_commands
    else:
        from contrastive.distribute.torch_backend import process_commands
    program = ["-m", "contrastive_cli.main", "--backend", backend, *argv]
    addresses = [f"HOST{i}:{port}" for i in range(machines)]
    lines = []
    for env, command in process_commands(program, machines, "gpu", addresses):
        if command[:3] == ["python", "-m", "torch.distributed.run"]:
            command = ["torchrun", *command[3:]]
        lines.append(" ".join([*(f"{k}={shlex.quote(v)}" for k, v in env.items()),
                               shlex.join(command)]))
    return lines


def keras_json(environ=None):
    """The path of the `keras.json` Keras reads: in `KERAS_HOME`, else `~/.keras`."""
    environ = os.environ if environ is None else environ
    home = environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "keras.json")


def configured_backend(environ=None):
    """The backend Keras will load, found without importing it: as Keras
    decides, `KERAS_BACKEND`, else `keras.json` (in `KERAS_HOME`, else
    `~/.keras`), else tensorflow. `environ`: default `os.environ`."""
    import json

    environ = os.environ if environ is None else environ
    if environ.get("KERAS_BACKEND"):
        return environ["KERAS_BACKEND"]
    try:
        with open(keras_json(environ), encoding="utf-8") as f:
            return json.load(f).get("backend") or "tensorflow"
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def available_devices(backend=None):
    """How many accelerators (else CPU devices) the backend sees now."""
    if backend is None:
        backend = configured_backend()
    if backend == "jax":
        import jax

        return len(jax.devices())
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_logical_devices("GPU")
        return len(gpus) or len(tf.config.list_logical_devices("CPU"))
    import torch

    return torch.cuda.device_count() or 1
