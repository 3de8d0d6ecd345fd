"""torch: `torch.distributed` with `DistributedDataParallel`.

One process per device, started by torchrun (`launch_command`), NCCL on
GPUs and gloo on CPUs. DistributedDataParallel averages the gradients; the
loss gathers every process' projections with
`torch.distributed.nn.functional.all_gather`, whose backward sums every
process' gradient for the local rows, so that the average DDP takes is the
gradient of the global loss. Keras' batch-norm layers are not torch
`_BatchNorm` modules (`SyncBatchNorm.convert_sync_batchnorm` does not see
them): `prepare` makes each compute its training statistics from an
all-reduce (with gradient) of the sum, the sum of squares and the count.
"""

import contextlib
import functools
import os
import re
import shlex
import warnings

from contrastive.distribute.base import Distribution, batch_norm_layers
from contrastive.errors import ProcessLost

# What gloo's and NCCL's errors say when a peer process went away.
_PEER_GONE = re.compile(r"Connection (?:closed|reset) by peer|remote worker crash|"
                        r"NCCL communicator was aborted|Broken pipe")


def _dist():
    import torch.distributed as dist

    return dist


def init_process_group():
    """Joins the process group torchrun describes (RANK, WORLD_SIZE,
    MASTER_ADDR, MASTER_PORT); NCCL with CUDA, else gloo. Returns whether a
    group of more than one process exists."""
    import torch

    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def synchronized_moments(layer, inputs, mask=None):
    """Batch-norm training statistics over every process' batch: one
    all-reduce (with gradient) of [sum, sum of squares, count]."""
    import torch
    from torch.distributed.nn.functional import all_reduce

    dist = _dist()
    if mask is not None or not (dist.is_available() and dist.is_initialized()):
        return type(layer)._moments(layer, inputs, mask)
    axes = list(layer._reduction_axes)
    channels = inputs.shape[layer.axis]
    count = inputs.numel() // channels
    local = torch.cat(
        [
            torch.sum(inputs, dim=axes),
            torch.sum(inputs * inputs, dim=axes),
            torch.full((1,), float(count), dtype=inputs.dtype, device=inputs.device),
        ]
    )
    with warnings.catch_warnings():
        # torch 2.13 marks it deprecated; it is the all-reduce with gradient.
        warnings.simplefilter("ignore", FutureWarning)
        total = all_reduce(local.contiguous())
    n = total[-1]
    mean = total[:channels] / n
    variance = torch.clamp(total[channels:2 * channels] / n - mean * mean, min=0.0)
    return mean, variance


def synchronize_batch_norm(model, enabled=True):
    """Makes every Keras BatchNormalization in `model` use
    `synchronized_moments` (or its own statistics again, `enabled` off)."""
    for layer in batch_norm_layers(model):
        if enabled:
            object.__setattr__(layer, "_moments", functools.partial(synchronized_moments, layer))
        elif "_moments" in layer.__dict__:
            object.__delattr__(layer, "_moments")


def process_commands(program, processes, devices, addresses, run_id="contrastive"):
    """How to start `program` (the arguments after `python`) on `processes`
    nodes of `devices` processes each: `[(environment, argv)]`, one
    `torchrun --nnodes processes --nproc-per-node devices` per node with
    c10d rendezvous at `addresses[0]` (`host:port`); torchrun assigns the
    ranks."""
    if program[:1] != ["-m"]:
        raise ValueError(f"expected a program started with -m module, received {program}")
    return [
        ({}, ["python", "-m", "torch.distributed.run", f"--nnodes={processes}",
              f"--nproc-per-node={devices}", "--rdzv-backend=c10d",
              f"--rdzv-endpoint={addresses[0]}", f"--rdzv-id={run_id}", *program])
        for _ in range(processes)
    ]


class TorchDistribution(Distribution):
    """DistributedDataParallel over the processes torchrun started."""

    strategy = "ddp"

    def __init__(self, devices=None, sync_batchnorm=True, gather_negatives=True):
        super().__init__(devices, sync_batchnorm, gather_negatives)
        import torch

        self.launched = init_process_group()
        if self.launched:
            self.num_replicas = _dist().get_world_size()
        else:
            found = torch.cuda.device_count() or 1
            self.num_replicas = found if devices is None else int(devices)

    @property
    def needs_launch(self):
        """More replicas are wanted than this process group has."""
        return self.num_replicas > 1 and not self.launched

    def launch_command(self, argv):
        if not self.needs_launch:
            return None
        return shlex.join(
            ["torchrun", "--standalone", f"--nproc_per_node={self.num_replicas}",
             "-m", "contrastive_cli.main", "--backend", "torch", *argv]
        )

    @property
    def is_chief(self):
        return not self.launched or _dist().get_rank() == 0

    @property
    def num_processes(self):
        return self.num_replicas if self.launched else 1

    @property
    def process_index(self):
        return self.replica_id()

    def replica_id(self):
        return _dist().get_rank() if self.launched else 0

    def replica_rows(self):
        return (self.num_replicas, self.replica_id()) if self.launched else None

    @contextlib.contextmanager
    def watch(self, explain):
        """See `Distribution.watch`: a collective that fails because a peer
        went away (gloo's "Connection closed by peer", NCCL's abort) raises
        `ProcessLost`, naming the other process when there are two, the
        peer's address otherwise; torchrun's own report follows it."""
        try:
            yield
        except Exception as exc:
            text = _peer_gone(exc)
            if not self.launched or text is None:
                raise
            rank, world = _dist().get_rank(), _dist().get_world_size()
            if world == 2:
                who = f"process {1 - rank} of 2 stopped responding"
            else:
                peer = re.search(r"\[[^\]]*\]:\d+", text)
                who = (f"process {rank} of {world} lost its connection to another process"
                       + (f" ({peer.group(0)})" if peer else ""))
            raise ProcessLost(explain(who)) from exc

    def gather(self, x):
        import torch
        from torch.distributed.nn.functional import all_gather

        if not self.launched:
            return x
        with warnings.catch_warnings():
            # torch 2.13 marks it deprecated; it is the gather with gradient.
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(all_gather(x.contiguous()), dim=0)

    def prepare(self, model):
        """Synchronized batch norm, the loss' gather, and a `train_step` for
        `fit` that runs the forward pass on this process' rows of the
        global batch through DistributedDataParallel (created on the
        first step, once the model is built)."""
        model.connect(self)
        if self.launched:
            synchronize_batch_norm(model, self.sync_batchnorm)
            object.__setattr__(model, "train_step", functools.partial(_ddp_train_step, self, model))
        return model

    def wrap(self, model):
        """`model` in DistributedDataParallel (built first: DDP needs its
        parameters); the wrapper is not tracked by Keras."""
        import torch
        from torch.nn.parallel import DistributedDataParallel

        if not self.launched:
            return model
        device_ids = [torch.cuda.current_device()] if torch.cuda.is_available() else None
        return DistributedDataParallel(model, device_ids=device_ids)


def _peer_gone(exc):
    """The message in `exc`'s chain that says a peer went away, or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if _PEER_GONE.search(str(exc)):
            return str(exc)
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _ddp_train_step(dist, model, data):
    """Keras' torch `train_step` (keras/src/backend/torch/trainer.py, 3.15)
    with the forward pass through DistributedDataParallel on this process'
    rows of the global batch; DDP averages the gradients in `backward`. The
    logged loss is averaged over the processes, and every other metric
    holds the state of the global batch (`_add_other_processes_updates`)."""
    import torch
    from keras.src import tree
    from keras.src.trainers import data_adapters

    # `data` holds this process' rows only (`Distribution.process_rows`).
    x, y, sample_weight = data_adapters.data_adapter_utils.unpack_x_y_sample_weight(data)
    ddp = model.__dict__.get("_ddp_module")
    if ddp is None:
        # In the instance dict, past the Layer and Module attribute tracking:
        # the wrapper holds the model, so tracking it would make a cycle.
        # The layers a method builds on its first call (an MLP head's batch
        # norm) did not exist when `prepare` ran.
        synchronize_batch_norm(model, dist.sync_batchnorm)
        ddp = model.__dict__["_ddp_module"] = dist.wrap(model)
    y_pred = ddp(x, training=True)
    model.zero_grad()
    # The method updates its own metrics in `compute_loss`.
    metrics_before = _metric_state(model)
    loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight,
                               training=True)
    # The logged loss is the global batch's (the mean of every process'
    # loss), as one process and the other engines log it.
    logged = loss.detach().clone()
    _dist().all_reduce(logged)
    model._loss_tracker.update_state(
        logged / dist.num_replicas,
        sample_weight=next(i for i in tree.flatten(x) if i is not None).shape[0],
    )
    if model.optimizer is not None:
        loss = model.optimizer.scale_loss(loss)
    loss.backward()
    weights = model.trainable_weights[:]
    with torch.no_grad():
        model.optimizer.apply([v.value.grad for v in weights], weights)
    model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    _add_other_processes_updates(metrics_before)
    return model.get_metrics_result()


def _metric_state(model):
    """The metric variables Keras aggregates by sum or mean, with a copy of
    their values, but the loss tracker's (given the global loss)."""
    variables = [v for metric in model.metrics if metric is not model._loss_tracker
                 for v in metric.variables if v.aggregation in ("sum", "mean")]
    return [(v, v.value.detach().clone()) for v in variables]


def _add_other_processes_updates(state):
    """Adds to this process' metric updates since `state` (`_metric_state`)
    the other processes' ones, so that every process holds the metrics of
    the global batch, as one process and the other engines do: one
    all-reduce of the changes."""
    import torch

    if not state:
        return
    dist = _dist()
    variables, before = zip(*state)
    with torch.no_grad():
        changes = torch.cat([(v.value - b).reshape(-1).to(torch.float64)
                             for v, b in zip(variables, before)])
        dist.all_reduce(changes)
        start = 0
        for v, b in zip(variables, before):
            change = changes[start:start + b.numel()].reshape(b.shape)
            start += b.numel()
            if v.aggregation == "mean":
                change = change / dist.get_world_size()
            v.value.copy_((b.to(torch.float64) + change).to(b.dtype))
