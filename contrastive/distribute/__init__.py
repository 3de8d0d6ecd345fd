"""The distribution layer: global-batch NT-Xent and synchronized batch norm.

One small backend-neutral interface, `Distribution` (`num_replicas`,
`replica_id()`, `gather(x)` with gradient, `scope()`, `prepare(model)`,
`distribute_input(arguments)`, `launch_command(argv)`), built from the
spec's `distribute` section by `from_spec`. Each backend's implementation runs on that backend's own
distributed engine:

- jax: `keras.distribution.DataParallel` over a device mesh; the compiled
  step sees the global batch, so the loss and batch norm are global.
- tensorflow: `tf.distribute` (Mirrored, MultiWorkerMirrored, TPU);
  `BatchNormalization(synchronized=True)`; `ReplicaContext.all_gather`.
- torch: `torch.distributed` with `DistributedDataParallel`, launched by
  torchrun; `torch.distributed.nn.functional.all_gather` and an all-reduce
  of batch-norm sums, both with gradient.

`contrastive.distribute.check` compares one step on N devices with the same
global batch on one device (`contrastive check-distributed`).
"""

from contrastive.distribute.base import Distribution, available_devices, from_spec

__all__ = ["Distribution", "available_devices", "from_spec"]
