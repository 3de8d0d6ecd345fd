"""The distributed check's step on torch: gloo processes under
DistributedDataParallel."""

import os
import socket
import sys
import tempfile

import numpy as np

from contrastive.distribute.torch_backend import TorchDistribution, _dist


def _forward_loss(module, model, x):
    return model.objective(module(x, training=True))


def _result(loss, model):
    return {
        "loss": float(loss),
        "grads": [v.value.grad.detach().cpu().numpy().astype(np.float64)
                  for v in model.trainable_variables],
        "stats": [np.asarray(v.value.detach().cpu().numpy(), dtype=np.float64)
                  for v in model.non_trainable_variables],
    }


def process_step(build_model, images, sync_batchnorm=True, gather_negatives=True):
    """This process' part of one DistributedDataParallel step in the
    process group torchrun describes: it computes on its rows of `images`.

    Returns:
        `(result, is_chief)`, `result` as `check_step`'s.
    """
    import torch

    torch.set_num_threads(1)
    dist = TorchDistribution(None, sync_batchnorm, gather_negatives)
    model = build_model()
    dist.prepare(model)
    ddp = dist.wrap(model)
    x = torch.as_tensor(images[dist.process_rows(images.shape[0])])
    loss = _forward_loss(ddp, model, x)
    loss.backward()  # DDP averages the gradients
    total = loss.detach().clone()
    _dist().all_reduce(total)
    result = _result(total / dist.num_replicas, model)
    # Every process is done with the group before any leaves. The group
    # is not destroyed: the callers leave with `os._exit`, and destroying
    # it here joins gloo's thread while holding the GIL, which deadlocks
    # when that thread is still releasing a tensor (it needs the GIL).
    _dist().barrier()
    return result, dist.is_chief


def _worker(rank, world, port, build_model, images, sync_batchnorm, gather_negatives, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    result, chief = process_step(build_model, images, sync_batchnorm, gather_negatives)
    if chief:
        np.save(out, np.array(result, dtype=object), allow_pickle=True)
    # Leave without the interpreter's teardown: threads of the libraries
    # loaded beside torch (TensorFlow's, through Keras) can abort it
    # ("terminate called without an active exception") after the work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_step(build_model, images, replicas, sync_batchnorm=True, gather_negatives=True):
    """One step in this process (`replicas` 1), or in `replicas` gloo
    processes under DistributedDataParallel; see
    `contrastive.distribute.check`."""
    import torch
    import torch.multiprocessing as mp

    if replicas == 1:
        model = build_model()
        loss = _forward_loss(model, model, torch.as_tensor(images))
        loss.backward()
        return _result(loss.detach(), model)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.npy")
        mp.spawn(
            _worker,
            args=(replicas, _free_port(), build_model, images, sync_batchnorm,
                  gather_negatives, out),
            nprocs=replicas,
            join=True,
        )
        return np.load(out, allow_pickle=True).item()
