'''`contrastive new-plugin`: writes a ready-to-install plugin distribution.

The skeleton uses only the public plugin interface: an entry point in the
group `contrastive.<kind>`, a component following the contract of its kind
(annotated constructor arguments, `get_config`, Keras ops only), and a test
that builds the component through the registry (so it checks the install)
and exercises it on the active backend. Layout, for `new-plugin
contrastive-foo --kind losses`:

    contrastive-foo/
        pyproject.toml              entry point "contrastive.losses": foo
        README.md
        src/contrastive_foo/__init__.py
        src/contrastive_foo/loss.py
        tests/test_contrastive_foo.py

`pip install ./contrastive-foo` and `contrastive list losses` shows `foo`
with its distribution. Nothing here imports Keras.
'''

import dataclasses
import keyword
import pathlib
import re
import string

from contrastive.errors import SpecError

KINDS = ("losses", "encoders", "heads", "augmenters", "datasets", "optimizers", "schedules")
_DIST_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*[A-Za-z0-9]$|^[A-Za-z]$")
_COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class PluginNames:
    """The names derived from a distribution name.

    Attributes:
        distribution: the distribution (pip) name, as given.
        package: the import package, e.g. `contrastive_foo`.
        component: the name used in spec files, e.g. `foo`.
        class_name: the component's Python class, e.g. `Foo`.
        kind: the registry kind.
        module: the module inside the package holding the component.
    """

    distribution: str
    package: str
    component: str
    class_name: str
    kind: str
    module: str


def plugin_names(name, kind="losses", component=None):
    """Derives package, component and class names from `name`.

    Raises:
        SpecError: `name`, `kind` or `component` is not usable.
    """
    if kind not in KINDS:
        raise SpecError(f"--kind: expected one of {', '.join(KINDS)}, received '{kind}'")
    if not isinstance(name, str) or not _DIST_NAME.match(name):
        raise SpecError(
            "NAME: expected a distribution name of letters, digits, '-', '_' "
            f"and '.', starting with a letter, received '{name}'"
        )
    package = re.sub(r"[-_.]+", "_", name).lower()
    if keyword.iskeyword(package):
        raise SpecError(f"NAME: '{package}' is a Python keyword; choose another name")
    if component is None:
        component = package.removeprefix("contrastive_") or package
    if not _COMPONENT_NAME.match(component):
        raise SpecError(
            "--component: expected lower-case letters, digits and '_', starting "
            f"with a letter, received '{component}'"
        )
    class_name = "".join(part.capitalize() for part in component.split("_") if part)
    if keyword.iskeyword(class_name) or not class_name.isidentifier():
        class_name = "Plugin" + class_name
    return PluginNames(name, package, component, class_name, kind, _MODULES[kind])


def write_plugin(name, kind="losses", out=None, component=None, check_builtins=True):
    """Writes the skeleton of a plugin distribution; returns its directory.

    Args:
        name: the distribution name (`contrastive-foo`).
        kind: the registry kind of its one component.
        out: the directory to create; default `./<name>`.
        component: the component's name in spec files; default the name
            without `contrastive-`, with `_` for `-`.
        check_builtins: refuse a component name a built-in already uses
            (the built-in would win). Imports the built-ins of `kind`.

    Returns:
        `(directory, PluginNames)`.

    Raises:
        SpecError: a bad name, a name a built-in uses, or `out` exists and
            is not empty (nothing is overwritten).
    """
    names = plugin_names(name, kind, component)
    root = pathlib.Path(out) if out is not None else pathlib.Path(name)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SpecError(
            f"--out: {root} already exists and is not empty; choose another "
            "directory (nothing is overwritten)"
        )
    if check_builtins:
        from contrastive.registry import BUILT_IN, get_registry

        registry = get_registry(kind)
        built_in = [e.name for e in registry.entries(names.component) if e.origin == BUILT_IN]
        if built_in:
            raise SpecError(
                f"the {registry.singular} name '{names.component}' is a built-in, "
                "which would win over the plugin; choose another NAME or --component"
            )
    values = {
        "distribution": names.distribution,
        "package": names.package,
        "component": names.component,
        "class_name": names.class_name,
        "kind": names.kind,
        "module": names.module,
        "section": _SECTIONS[kind],
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"src/{names.package}/__init__.py": _INIT,
        f"src/{names.package}/{names.module}.py": _COMPONENTS[kind],
        f"tests/test_{names.package}.py": _TEST_HEADER + _TESTS[kind],
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(string.Template(template).substitute(values), encoding="utf-8")
    return root, names


_MODULES = {
    "losses": "loss",
    "encoders": "encoder",
    "heads": "head",
    "augmenters": "augmenter",
    "datasets": "dataset",
    "optimizers": "optimizer",
    "schedules": "schedule",
}
_SECTIONS = {
    "losses": "loss",
    "encoders": "encoder",
    "heads": "head",
    "augmenters": "augment",
    "datasets": "data",
    "optimizers": "optimizer",
    "schedules": "schedule",
}

# Templates (string.Template: $name is substituted, $$ is a dollar) ----------

_PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "$distribution"
version = "0.1.0"
description = "A $module for contrastive: $component."
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["contrastive>=0.1"]

[project.optional-dependencies]
test = ["pytest>=8.0"]

# The plugin interface: group "contrastive.<kind>", entry name = the name used
# in spec files, value = "module:object". Nothing is imported at discovery.
[project.entry-points."contrastive.$kind"]
$component = "$package.$module:$class_name"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
filterwarnings = ["ignore::DeprecationWarning"]
'''

_README = '''\
# $distribution

A plugin for contrastive (SimCLR as a Keras 3 framework): the $module
`$component`, registered through the entry-point group `contrastive.$kind`.

```bash
pip install .                      # or: pip install -e .
contrastive list $kind             # $component  $distribution 0.1.0
contrastive show $kind $component
for b in jax torch tensorflow; do KERAS_BACKEND=$$b python -m pytest -q; done
```

In a spec:

```yaml
$section: {name: $component}
```

Bump `version` in `pyproject.toml` on every release; a change to an
argument's name or meaning, or to the saved config, is a major version.
'''

_INIT = '''\
"""$distribution: the $module `$component` for contrastive.

Registered by the entry point `$component` of the group `contrastive.$kind`
(see pyproject.toml); contrastive imports `$package.$module` the first time
a spec names `$component`.
"""

__version__ = "0.1.0"
'''

_COMPONENTS = {}

_COMPONENTS["losses"] = '''\
"""The loss `$component`: called as `loss(z_a, z_b)` with the two views'
projections, each `(N, d)`."""

import keras
from keras import ops

from contrastive.typecheck import PositiveFloat


class $class_name(keras.losses.Loss):
    """One-directional InfoNCE: each first view must pick its own second view
    among the N second views of the batch.

        l_i = -s(a_i, b_i) / tau + log sum_j exp(s(a_i, b_j) / tau)

    with s the cosine similarity. Computed in float32 under any precision.

    Args:
        temperature: tau.

    Call arguments:
        z_a: projections of the first views, `(N, d)`.
        z_b: projections of the second views, `(N, d)`.

    Returns:
        One loss per first view, `(N,)`; Keras' reduction averages them.
    """

    def __init__(self, temperature: PositiveFloat = 0.5, **kwargs):
        kwargs.setdefault("name", "$component")
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature: expected a number > 0, received {temperature}")
        self.temperature = float(temperature)

    def call(self, z_a, z_b):
        z_a = ops.cast(z_a, "float32")
        z_b = ops.cast(z_b, "float32")
        z_a = z_a / ops.maximum(ops.norm(z_a, axis=1, keepdims=True), 1e-12)
        z_b = z_b / ops.maximum(ops.norm(z_b, axis=1, keepdims=True), 1e-12)
        logits = ops.matmul(z_a, ops.transpose(z_b)) / self.temperature
        positives = ops.sum(z_a * z_b, axis=1) / self.temperature
        return ops.logsumexp(logits, axis=1) - positives

    def get_config(self):
        config = super().get_config()
        config.update(temperature=self.temperature)
        return config
'''

_COMPONENTS["encoders"] = '''\
"""The encoder `$component`: images `(B, H, W, C)` in [0, 1] to h `(B, D)`."""

import keras

from contrastive.typecheck import PositiveInt


class $class_name(keras.layers.Layer):
    """Convolution stages (3x3 conv, batch norm, ReLU, each stage halving the
    resolution), then global average pooling. Channels last; Keras layers
    and ops only, so it runs and compiles on JAX, PyTorch and TensorFlow.

    Args:
        width: channels of the first stage; each stage doubles them.
        stages: the number of stages.

    Call arguments:
        images: float32 `(B, H, W, C)`, values in [0, 1].
        training: batch-norm statistics in training mode.

    Returns:
        h of shape `(B, width * 2 ** (stages - 1))`.
    """

    def __init__(self, width: PositiveInt = 32, stages: PositiveInt = 2, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.stages = int(stages)
        self.convs = []
        self.norms = []
        for stage in range(self.stages):
            self.convs.append(
                keras.layers.Conv2D(
                    self.width * 2**stage, 3, strides=2, padding="same", use_bias=False
                )
            )
            self.norms.append(keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5))
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.output_dim = self.width * 2 ** (self.stages - 1)

    def build(self, input_shape):
        # Create every weight here: JAX needs them before the first compiled step.
        shape = tuple(input_shape)
        for conv, norm in zip(self.convs, self.norms):
            conv.build(shape)
            shape = conv.compute_output_shape(shape)
            norm.build(shape)

    def call(self, images, training=False):
        x = images
        for conv, norm in zip(self.convs, self.norms):
            x = keras.activations.relu(norm(conv(x), training=training))
        return self.pool(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(width=self.width, stages=self.stages)
        return config
'''

_COMPONENTS["heads"] = '''\
"""The head `$component`: h `(B, D)` to the projection z `(B, d)`."""

import keras

from contrastive.typecheck import PositiveInt


class $class_name(keras.layers.Layer):
    """A linear projection z = W h, computed in float32.

    Args:
        output_dim: the width of z.

    Call arguments:
        h: the representation, `(B, D)`.
        training: unused (no batch statistics).

    Returns:
        z of shape `(B, output_dim)`.
    """

    def __init__(self, output_dim: PositiveInt = 64, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = int(output_dim)
        self.dense = keras.layers.Dense(self.output_dim, use_bias=False, dtype="float32")

    def build(self, input_shape):
        self.dense.build(tuple(input_shape))

    def call(self, h, training=False):
        return self.dense(keras.ops.cast(h, "float32"))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(output_dim=self.output_dim)
        return config
'''

_COMPONENTS["augmenters"] = '''\
"""The augmenter `$component`: one random view per call."""

import keras
from keras import ops

from contrastive.typecheck import Probability


class $class_name(keras.layers.Layer):
    """Random brightness: with probability `p`, adds a per-image offset
    drawn uniformly from [-strength, strength], then clips to [0, 1].

    Every image draws its own parameters; the seed generator makes the
    draws reproducible and works inside compiled steps on every backend.

    Args:
        strength: the largest brightness offset.
        p: the probability of changing an image.
        seed: seeds the draws; contrastive passes the spec's `seed`.

    Call arguments:
        images: float32 `(B, H, W, C)` in [0, 1] (uint8 is divided by 255).
        training: False returns the images unchanged.

    Returns:
        float32 images of the same shape, in [0, 1].
    """

    def __init__(
        self, strength: Probability = 0.2, p: Probability = 0.8, seed: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.strength = float(strength)
        self.p = float(p)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True  # no weights

    def call(self, images, training=True):
        if "int" in str(images.dtype):
            images = ops.cast(images, "float32") / 255.0
        images = ops.cast(images, "float32")
        if not training:
            return images
        batch = ops.shape(images)[0]
        offset = keras.random.uniform(
            (batch, 1, 1, 1), -self.strength, self.strength, seed=self.seed_generator
        )
        apply = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator) < self.p
        return ops.clip(ops.where(apply, images + offset, images), 0.0, 1.0)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(strength=self.strength, p=self.p, seed=self.seed)
        return config
'''

_COMPONENTS["datasets"] = '''\
"""The dataset `$component`: `load(split)` returns images and labels."""

import numpy as np

from contrastive.datasets import Arrays, Dataset
from contrastive.typecheck import PositiveInt


class $class_name(Dataset):
    """Synthetic images: each class is a noisy constant colour. A template
    for a real dataset: read files in `load`, return uint8 NHWC images.

    Args:
        size: height and width of the images.
        classes: the number of classes.
        per_class: images per class and split.
        seed: seeds the generator.
    """

    splits = ("train", "test")

    def __init__(
        self, size: PositiveInt = 16, classes: PositiveInt = 4,
        per_class: PositiveInt = 32, seed: int = 0,
    ):
        self.size = size
        self.classes = classes
        self.per_class = per_class
        self.seed = seed

    def load(self, split="train"):
        self.check_split(split)
        rng = np.random.default_rng([self.seed, self.splits.index(split)])
        colours = np.random.default_rng(self.seed).uniform(size=(self.classes, 3))
        labels = np.repeat(np.arange(self.classes), self.per_class).astype(np.int32)
        noise = rng.normal(0.0, 0.1, size=(len(labels), self.size, self.size, 3))
        images = np.clip(colours[labels][:, None, None, :] + noise, 0.0, 1.0)
        images = np.round(images * 255).astype(np.uint8)
        names = tuple(f"class_{i}" for i in range(self.classes))
        return Arrays(images, labels, names)
'''

_COMPONENTS["optimizers"] = '''\
"""The optimizer `$component`."""

import keras
from keras import ops

from contrastive.typecheck import PositiveFloat


class $class_name(keras.optimizers.Optimizer):
    """Sign descent: variable -= learning_rate * sign(gradient).

    `learning_rate` is the peak rate; a spec's schedule replaces it.

    Args:
        learning_rate: the step size.
    """

    def __init__(self, learning_rate: PositiveFloat = 0.01, name="$component", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        self.assign_sub(variable, lr * ops.sign(ops.cast(gradient, variable.dtype)))
'''

_COMPONENTS["schedules"] = '''\
"""The learning-rate schedule `$component`."""

import math

import keras
from keras import ops

from contrastive.typecheck import Probability


class $class_name(keras.optimizers.schedules.LearningRateSchedule):
    """Cosine decay from the optimizer's rate to `final_fraction` of it.

    contrastive passes `base_learning_rate` (the optimizer's rate) and
    `total_steps` at run time; a spec sets only `final_fraction`.

    Args:
        base_learning_rate: the starting rate (set by contrastive).
        total_steps: the steps of the whole run (set by contrastive).
        final_fraction: the last rate as a fraction of the first.
    """

    def __init__(self, base_learning_rate=0.1, total_steps=1000,
                 final_fraction: Probability = 0.0):
        self.base_learning_rate = float(base_learning_rate)
        self.total_steps = max(int(total_steps), 1)
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        progress = ops.minimum(ops.cast(step, "float32") / self.total_steps, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        scale = self.final_fraction + (1.0 - self.final_fraction) * cosine
        return self.base_learning_rate * scale

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "final_fraction": self.final_fraction,
        }
'''

_TEST_HEADER = '''\
"""Tests of the $module `$component`; run once per backend:

    for b in jax torch tensorflow; do KERAS_BACKEND=$$b python -m pytest -q; done

The first test needs the distribution installed (`pip install -e .`): it
finds the component through its entry point, as contrastive does.
"""

import numpy as np
import pytest

from contrastive.registry import get_registry


def test_installed_and_registered_by_entry_point():
    registry = get_registry("$kind")
    entries = [e for e in registry.entries("$component") if not e.shadowed_by_builtin]
    assert entries and entries[0].origin == "$distribution"
    from $package.$module import $class_name

    assert registry.get("$component") is $class_name
'''

_TESTS = {}

_TESTS["losses"] = '''

def backend_gradient(loss, za, zb):
    """(value, d/dz_a) of the mean loss, with the active backend's autodiff."""
    import keras

    backend = keras.backend.backend()
    za, zb = za.astype("float32"), zb.astype("float32")
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(lambda a: loss(a, zb))(za)
        return float(value), np.asarray(grad)
    if backend == "torch":
        import torch

        a = torch.tensor(za, requires_grad=True)
        value = loss(a, torch.tensor(zb))
        (grad,) = torch.autograd.grad(value, (a,))
        return float(value.detach()), grad.numpy()
    import tensorflow as tf

    a = tf.Variable(za)
    with tf.GradientTape() as tape:
        value = loss(a, zb)
    return float(value), tape.gradient(value, a).numpy()


def reference(za, zb, tau):
    """The loss in float64 NumPy, written independently of the Keras code."""
    a = za / np.linalg.norm(za, axis=1, keepdims=True)
    b = zb / np.linalg.norm(zb, axis=1, keepdims=True)
    logits = a @ b.T / tau
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -np.mean(np.diag(log_softmax))


def test_value_and_gradient_match_numpy():
    loss = get_registry("$kind").build({"name": "$component", "temperature": 0.5})
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    value, grad = backend_gradient(loss, za, zb)
    np.testing.assert_allclose(value, reference(za, zb, 0.5), rtol=1e-4)
    h = 1e-6
    numeric = np.zeros_like(za)
    for idx in np.ndindex(*za.shape):
        plus, minus = za.copy(), za.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (reference(plus, zb, 0.5) - reference(minus, zb, 0.5)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-5)


def test_config_round_trip_and_validation():
    from $package.$module import $class_name

    loss = $class_name(temperature=0.2)
    assert $class_name.from_config(loss.get_config()).temperature == 0.2
    with pytest.raises(ValueError, match="temperature"):
        $class_name(temperature=0.0)
'''

_TESTS["encoders"] = '''

def test_maps_images_to_h_and_round_trips_its_config():
    import keras

    encoder = get_registry("$kind").build({"name": "$component", "width": 8, "stages": 2})
    images = np.random.default_rng(0).uniform(size=(4, 16, 16, 3)).astype("float32")
    h = keras.ops.convert_to_numpy(encoder(images, training=True))
    assert h.shape == (4, 16) and np.all(np.isfinite(h))
    assert encoder.compute_output_shape((None, 16, 16, 3)) == (None, 16)
    clone = type(encoder).from_config(encoder.get_config())
    assert clone.get_config()["width"] == 8


def test_works_inside_a_compiled_model():
    import keras

    inputs = keras.Input((16, 16, 3))
    encoder = get_registry("$kind").build({"name": "$component", "width": 4})
    model = keras.Model(inputs, keras.layers.Dense(1)(encoder(inputs)))
    model.compile(optimizer="sgd", loss="mse", jit_compile="auto")
    x = np.random.default_rng(0).uniform(size=(8, 16, 16, 3)).astype("float32")
    history = model.fit(x, np.zeros((8, 1)), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
'''

_TESTS["heads"] = '''

def test_maps_h_to_z():
    import keras

    head = get_registry("$kind").build({"name": "$component", "output_dim": 8})
    z = keras.ops.convert_to_numpy(head(np.ones((4, 16), "float32"), training=True))
    assert z.shape == (4, 8) and z.dtype == np.float32
    assert type(head).from_config(head.get_config()).output_dim == 8
'''

_TESTS["augmenters"] = '''

def test_one_view_keeps_shape_and_range_and_differs_per_image():
    import keras

    layer = get_registry("$kind").build({"name": "$component", "p": 1.0, "seed": 0})
    images = np.full((8, 6, 6, 3), 0.5, "float32")
    view = keras.ops.convert_to_numpy(layer(images, training=True))
    assert view.shape == images.shape and view.dtype == np.float32
    assert view.min() >= 0.0 and view.max() <= 1.0
    assert len(np.unique(view[:, 0, 0, 0])) > 1  # independent draws per image
    same = keras.ops.convert_to_numpy(layer(images, training=False))
    np.testing.assert_array_equal(same, images)


def test_seeded_layers_repeat_their_draws():
    import keras

    images = np.full((4, 6, 6, 3), 0.5, "float32")
    first = get_registry("$kind").build({"name": "$component", "seed": 3})
    second = type(first).from_config(first.get_config())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first(images)), keras.ops.convert_to_numpy(second(images))
    )
'''

_TESTS["datasets"] = '''

def test_loads_uint8_images_and_labels():
    dataset = get_registry("$kind").build({"name": "$component", "size": 8, "classes": 2})
    train = dataset.load("train")
    assert train.images.shape == (64, 8, 8, 3) and train.images.dtype == np.uint8
    assert train.labels.shape == (64,)
    with pytest.raises(ValueError, match="split"):
        dataset.load("validation")
'''

_TESTS["optimizers"] = '''

def test_steps_against_the_sign_of_the_gradient():
    import keras

    optimizer = get_registry("$kind").build({"name": "$component", "learning_rate": 0.1})
    variable = keras.Variable(np.array([1.0, -1.0], "float32"))
    optimizer.apply_gradients([(keras.ops.convert_to_tensor([2.0, -3.0]), variable)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), [0.9, -0.9], rtol=1e-6)
'''

_TESTS["schedules"] = '''

def test_decays_from_the_base_rate():
    import keras

    schedule = get_registry("$kind").build(
        {"name": "$component", "final_fraction": 0.1},
        context={"base_learning_rate": 0.5, "total_steps": 10},
    )
    rate = lambda step: float(keras.ops.convert_to_numpy(schedule(step)))  # noqa: E731
    assert rate(0) == pytest.approx(0.5) and rate(10) == pytest.approx(0.05)
    assert rate(0) > rate(5) > rate(10)
'''
