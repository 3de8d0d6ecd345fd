"""The contract of each kind of component, checked on the active backend.

Every component, built from its defaults (plus any required arguments the
caller gives), must round-trip its config and its Keras serialization, and
meet its kind's call contract (`contrastive.kinds.Kind.contract`): output
shapes, ranges, finite values and finite gradients.
"""

import numpy as np

from contrastive import kinds
from contrastive.errors import ContrastiveError
from contrastive.registry import build, get_registry
from contrastive.testing.gradients import value_and_grad

# What contrastive supplies at run time, for components that take it.
EXAMPLE_CONTEXT = {
    "augmenters": {"seed": 0},
    "schedules": {"base_learning_rate": 0.1, "steps_per_epoch": 10, "total_steps": 100,
                  "batch_size": 256},
}


def _example_context(kind):
    if kind != "methods":
        return EXAMPLE_CONTEXT.get(kind)
    from contrastive.encoders.small_cnn import SmallCNN
    from contrastive.heads.mlp import MLPHead
    from contrastive.losses.nt_xent import NTXent

    return {"encoder": SmallCNN(widths=[4]), "head": MLPHead(hidden_dim=8, output_dim=4),
            "augmenter": None, "loss": NTXent(temperature=0.5), "num_classes": 3,
            "input_layer": None, "steps_per_epoch": 2, "total_steps": 4}


class ContractError(AssertionError):
    """A component does not meet the contract of its kind."""


def check_component(kind, name, arguments=None):
    """Builds component `name` of `kind` and checks its contract.

    Args:
        kind: a kind of `contrastive.kinds` (`"losses"`, ...).
        name: the registered name.
        arguments: arguments besides the defaults (those a component
            requires, such as a dataset's `path`).

    Returns:
        The built component.

    Raises:
        ContractError: naming the component and what it failed.
    """
    kind = kinds.get(kind)
    label = f"{kind.singular} '{name}'"
    try:
        component = build(kind.name, {"name": name, **(arguments or {})}, kind.section,
                          _example_context(kind.name))
    except ContrastiveError as exc:
        raise ContractError(f"{label}: cannot be built from its defaults: {exc}") from exc
    _CALLS[kind.name](component, label)
    if kind.name != "datasets":
        _round_trip(component, label)
    return component


def components(kind_names=None):
    """`(kind, name)` of every usable registered component (plugins too)."""
    for kind in kind_names or kinds.NAMES:
        for name in get_registry(kind).names():
            yield kind, name


def check_all(arguments=None, kind_names=None):
    """Checks every registered component; returns `{(kind, name): error}`
    for those that fail (empty when all pass).

    Args:
        arguments: `{(kind, name): arguments}` for components with required
            arguments.
        kind_names: only these kinds.
    """
    failures = {}
    for kind, name in components(kind_names):
        try:
            check_component(kind, name, (arguments or {}).get((kind, name)))
        except ContractError as exc:
            failures[(kind, name)] = str(exc)
    return failures


def _expect(condition, label, message):
    if not condition:
        raise ContractError(f"{label}: {message}")


def _numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(x, "float32")))


def _finite(label, what, *arrays):
    for array in arrays:
        _expect(np.all(np.isfinite(array)), label, f"{what} has values that are not finite")


def _round_trip(component, label):
    import keras

    config = component.get_config()
    clone = type(component).from_config(config)
    _expect(_same(clone.get_config(), config), label,
            "from_config(get_config()) gives another config")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(component))
    _expect(type(restored) is type(component), label,
            f"deserializes as {type(restored).__name__}; is it registered as serializable?")


def _same(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)  # NaN equals NaN here


def _images(count=4, size=16, seed=0):
    return np.random.default_rng(seed).random((count, size, size, 3)).astype("float32")


def _check_augmenter(layer, label):
    images = _images()
    view = _numpy(layer(images, training=True))
    _expect(view.shape == images.shape, label,
            f"expected a view of shape {images.shape}, received {view.shape}")
    _finite(label, "the view", view)
    _expect(view.min() >= -1e-5 and view.max() <= 1 + 1e-5, label,
            f"expected a view in [0, 1], received values in [{view.min():g}, {view.max():g}]")


def _check_layer_gradient(layer, inputs, label):
    from keras import ops

    value, (grad,) = value_and_grad(
        lambda x: ops.mean(ops.square(ops.cast(layer(x, training=False), "float32"))), inputs)
    _finite(label, "the gradient", value, grad)


def _check_encoder(layer, label):
    images = _images(2, 32)
    h = _numpy(layer(images, training=False))
    _expect(h.ndim == 2 and h.shape[0] == 2, label,
            f"expected h of shape (2, D) for 2 images, received {h.shape}")
    _finite(label, "h", h)
    _check_layer_gradient(layer, images, label)


def _check_head(layer, label):
    h = np.random.default_rng(0).normal(size=(4, 16)).astype("float32")
    z = _numpy(layer(h, training=False))
    _expect(z.ndim == 2 and z.shape[0] == 4, label,
            f"expected z of shape (4, d) for h of shape (4, 16), received {z.shape}")
    _finite(label, "z", z)
    _check_layer_gradient(layer, h, label)


def _check_loss(loss, label):
    rng = np.random.default_rng(0)
    z_a = rng.normal(size=(8, 16)).astype("float32")
    z_b = (z_a + 0.5 * rng.normal(size=(8, 16))).astype("float32")
    value, grads = value_and_grad(lambda a, b: loss(a, b), z_a, z_b)
    _expect(np.shape(value) == (), label, f"expected a scalar, received shape {np.shape(value)}")
    _finite(label, "the loss or its gradient", value, *grads)
    _expect(any(np.abs(g).max() > 0 for g in grads), label, "its gradient is zero everywhere")


def _check_optimizer(optimizer, label):
    import keras

    for candidate in (optimizer, type(optimizer).from_config({
            **optimizer.get_config(),
            "learning_rate": keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)})):
        variable = keras.Variable(np.ones((3, 2), "float32"))
        candidate.apply([keras.ops.convert_to_tensor(np.full((3, 2), 0.5, "float32"))],
                        [variable])
        after = _numpy(variable)
        _finite(label, "the updated variable", after)
        _expect(not np.allclose(after, 1.0), label, "one step did not change the variable")


def _check_schedule(schedule, label):
    total = EXAMPLE_CONTEXT["schedules"]["total_steps"]
    for step in (0, total // 2, total - 1):
        rate = float(_numpy(schedule(step)))
        _expect(np.isfinite(rate) and rate >= 0, label,
                f"expected a finite rate >= 0 at step {step}, received {rate}")


def _check_dataset(dataset, label):
    from contrastive.datasets.base import Dataset

    _expect(isinstance(dataset, Dataset), label, "is not a contrastive.datasets.Dataset")
    _expect("train" in dataset.splits, label, f"expected a 'train' split, has {dataset.splits}")
    if dataset.needs_download:
        return
    data = dataset.load("train")
    images = np.asarray(data.images)
    _expect(images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3, label,
            f"expected uint8 images (N, H, W, 3), received {images.dtype} {images.shape}")
    _expect(data.labels is None or len(data.labels) == len(images), label,
            "expected as many labels as images")


def _check_method(method, label):
    import keras

    from contrastive.methods import Method

    _expect(isinstance(method, Method), label, "is not a contrastive.methods.Method")
    images = (_images(8, 8) * 255).astype("uint8")
    outputs = method(images, training=False)
    _expect(isinstance(outputs, dict) and "h" in outputs, label,
            "call(x, training=False) must return a dict with 'h'")
    h = _numpy(outputs["h"])
    _expect(h.shape[0] == 8, label, f"expected h with 8 rows for 8 images, received {h.shape}")
    method.compile(optimizer=keras.optimizers.SGD(0.01))
    labels = np.arange(8, dtype="int32") % 3
    history = method.fit(images, labels, batch_size=4, epochs=1, verbose=0, shuffle=False)
    losses = history.history["loss"]
    _expect(all(np.isfinite(losses)), label, f"training gave a loss that is not finite: {losses}")
    _finite(label, "the weights after a step", *[_numpy(v) for v in method.trainable_variables])


_CALLS = {
    "datasets": _check_dataset,
    "augmenters": _check_augmenter,
    "encoders": _check_encoder,
    "heads": _check_head,
    "losses": _check_loss,
    "optimizers": _check_optimizer,
    "schedules": _check_schedule,
    "methods": _check_method,
}
