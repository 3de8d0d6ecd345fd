"""One training step on N devices against the same global batch on one.

A tiny model of any method (SimCLR by default: small_cnn with widths [8],
an MLP head with batch norm, NT-Xent), the paper's augmentation seeded
alike on both sides (where each replica augments its own rows, it draws
the global batch's parameters and keeps its rows, so both sides see the
same views), fixed weights. The single-device side computes the
loss, the gradients and the non-trainable state (batch-norm moving
statistics, and a method's own: a momentum encoder, a queue) after one step
on the global batch; the distributed side does the same step through the
backend's distributed engine. With synchronized batch norm and gathered negatives the two agree to
float32 round-off; with either off they do not.

`processes.py` runs the distributed side over several local processes,
each started as its backend's engine documents.

Used by `contrastive check-distributed` and the tests.
"""

import functools
import inspect

import numpy as np

TOLERANCE = 1e-4
GLOBAL_BATCH = 8
IMAGE_SIZE = 8


def images(batch=GLOBAL_BATCH, size=IMAGE_SIZE, seed=0):
    """A fixed global batch of float32 images in [0, 1], NHWC."""
    return np.random.default_rng(seed).random((batch, size, size, 3)).astype("float32")


def build_model(seed=0, widths=(8,), method="simclr", arguments=None):
    """The tiny model of the check: `method` (the name of any registered
    method, or a method class, with `arguments`) around a small CNN, an MLP head with batch norm and
    NT-Xent, built on `images()[:2]` (an inference call, which must create
    every variable) without updating batch-norm statistics; the same
    weights for every `seed`."""
    import keras

    from contrastive.augmenters.simclr import SimCLRAugment
    from contrastive.encoders.small_cnn import SmallCNN
    from contrastive.heads.mlp import MLPHead
    from contrastive.losses.nt_xent import NTXent
    from contrastive.registry import build

    keras.utils.set_random_seed(seed)
    context = {
        "encoder": SmallCNN(widths=list(widths)),
        "head": MLPHead(num_layers=2, hidden_dim=8, output_dim=4),
        "augmenter": SimCLRAugment(preset="imagenet", size=IMAGE_SIZE, seed=7), "loss": NTXent(temperature=0.5), "num_classes": None,
        "input_layer": None, "steps_per_epoch": 1, "total_steps": 10,
    }
    if isinstance(method, str):
        model = build("methods", {"name": method, **(arguments or {})}, "method", context)
    else:  # a method class, e.g. in processes that cannot see its entry point
        accepted = inspect.signature(method).parameters
        model = method(**{k: v for k, v in context.items() if k in accepted}, **(arguments or {}))
    model(images(2), training=False)
    return model


def relative_difference(a, b):
    """max |a - b| / max(max |b|, tiny): the difference relative to the
    reference's scale."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, 1e-12)
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


def _backend_step(backend):
    if backend == "jax":
        from contrastive.distribute.check.jax_step import check_step
    elif backend == "tensorflow":
        from contrastive.distribute.check.tensorflow_step import check_step
    else:
        from contrastive.distribute.check.torch_step import check_step
    return check_step


def run_check(devices, sync_batchnorm=True, gather_negatives=True, tolerance=TOLERANCE,
              batch=GLOBAL_BATCH, backend=None, method="simclr", arguments=None):
    """Compares one step of `method` (with `arguments`) on `devices`
    replicas with one device.

    Returns:
        A dict: backend, devices, loss_single, loss_distributed,
        loss_difference, max_grad_difference, max_batchnorm_difference
        (relative, per tensor, the largest), tolerance, passed.
    """
    import keras

    backend = backend or keras.backend.backend()
    if batch % devices:
        raise ValueError(f"the global batch {batch} does not split over {devices} devices")
    step = _backend_step(backend)
    x = images(batch)
    make = functools.partial(build_model, method=method, arguments=arguments)
    single = step(make, x, 1)
    multi = step(make, x, devices, sync_batchnorm=sync_batchnorm,
                 gather_negatives=gather_negatives)
    return compare(single, multi, backend=backend, devices=devices, batch=batch,
                   tolerance=tolerance,
                   sync_batchnorm=sync_batchnorm, gather_negatives=gather_negatives,
                   method=getattr(method, "__name__", method))


def compare(single, multi, tolerance=TOLERANCE, **facts):
    """The report of `run_check` from two `check_step` results."""
    loss_diff = abs(multi["loss"] - single["loss"]) / max(abs(single["loss"]), 1e-12)
    grad_diff = max(relative_difference(a, b) for a, b in zip(multi["grads"], single["grads"]))
    stat_diff = max(
        (relative_difference(a, b) for a, b in zip(multi["stats"], single["stats"])), default=0.0
    )
    if len(multi["grads"]) != len(single["grads"]) or len(multi["stats"]) != len(single["stats"]):
        raise RuntimeError("the two sides of the check have different variables")
    report = dict(facts)
    report.update(
        loss_single=single["loss"],
        loss_distributed=multi["loss"],
        loss_difference=loss_diff,
        max_grad_difference=grad_diff,
        max_batchnorm_difference=stat_diff,
        tolerance=tolerance,
    )
    report["passed"] = bool(max(loss_diff, grad_diff, stat_diff) <= tolerance)
    return report
