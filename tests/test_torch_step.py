"""The traced, compiled train step on torch (`contrastive.torch_step`):
the same numbers as Keras' eager step (bit for bit as a graph, within
rounding compiled), the same draws, a fallback for steps it cannot trace,
and nothing changed on the other backends."""

import warnings

import keras
import numpy as np
import pytest

from contrastive import torch_speed, torch_step
from contrastive.methods.simclr import SimCLR
from contrastive.optimizers.lars import LARS
from contrastive.registry import build
from contrastive.schedules.warmup_cosine import WarmupCosine

SIZE, BATCH, STEPS = 16, 8, 3


def _data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH * STEPS, SIZE, SIZE, 3), dtype=np.uint8)
    labels = rng.integers(0, 3, BATCH * STEPS).astype("int32")
    return images, labels


def _simclr(jit_compile, optimizer="lars", precision="float32", encoder=None):
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy(precision)
    model = SimCLR(
        build("encoders", encoder or {"name": "small_cnn", "widths": [8, 16]}, "encoder"),
        build("heads", {"name": "mlp", "output_dim": 8}, "head"),
        build("augmenters", {"name": "simclr", "preset": "cifar10", "blur": True}, "augment",
              {"seed": 3}),
        build("losses", {"name": "nt_xent", "temperature": 0.5}, "loss"),
        num_classes=3,
    )
    schedule = WarmupCosine(warmup=2, warmup_unit="steps", scaling="none", base_learning_rate=0.5,
                            steps_per_epoch=STEPS, total_steps=2 * STEPS)
    if optimizer == "lars":
        opt = LARS(schedule, weight_decay=1e-4)
    else:
        opt = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=optimizer == "nesterov")
    model.compile(optimizer=opt, jit_compile=jit_compile)
    return model


def _fit(model, epochs=2, steps=STEPS):
    images, labels = _data()
    history = model.fit(images[:BATCH * steps], labels[:BATCH * steps], epochs=epochs, batch_size=BATCH, shuffle=False,
                        verbose=0, callbacks=[torch_speed.callback()])
    state = [keras.ops.convert_to_numpy(v.value) for v in model.variables + model.optimizer.variables]
    return history.history, state


@pytest.fixture
def graph_only(monkeypatch, backend):
    """The traced graph without inductor (same operations, no compile time)."""
    if backend != "torch":
        pytest.skip("torch only: the other backends compile with Keras")
    monkeypatch.setenv("CONTRASTIVE_TORCH_STEP", "graph")
    yield
    keras.config.set_dtype_policy("float32")


@pytest.mark.parametrize("optimizer,precision", [
    ("lars", "float32"), ("lars", "mixed_bfloat16"), ("sgd", "float32"), ("nesterov", "float32")])
def test_traced_step_is_the_eager_step(graph_only, optimizer, precision):
    """Bit for bit with LARS; Keras' SGD multiplies by its learning rate
    inside `add_(alpha=lr)` (a fused multiply-add), the traced SGD keeps
    the rate a tensor and rounds the product first (one ulp a step)."""
    eager_history, eager = _fit(_simclr(False, optimizer, precision))
    model = _simclr(True, optimizer, precision)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="train.jit_compile")  # no fallback
        traced_history, traced = _fit(model)
    assert isinstance(model.train_function, torch_step.TracedStep)
    assert model.train_function.failed is None and len(model.train_function.graphs) == 1
    assert len(traced) == len(eager)
    if optimizer == "lars":
        assert traced_history == eager_history
        for a, b in zip(eager, traced):
            np.testing.assert_array_equal(a, b)
    else:
        for key in eager_history:
            np.testing.assert_allclose(traced_history[key], eager_history[key], rtol=1e-6)
        for a, b in zip(eager, traced):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The learning rate followed the schedule (it was not frozen at its
    # first value): LARS/SGD's step counter moved, and so did the weights.
    assert int(model.optimizer.iterations) == 2 * STEPS


def test_traced_step_draws_fresh_views_every_step(graph_only):
    import torch

    model = _simclr(True)
    _fit(model, epochs=1)
    step = model.train_function
    entry = next(iter(step.graphs.values()))
    # Every draw of the augmenter goes through the recorded slots, and the
    # graph holds no random operation of its own.
    assert entry["slots"]
    assert not [n for n in entry["graph"].graph.nodes
                if n.op == "call_function" and torch.Tag.nondeterministic_seeded
                in getattr(n.target, "tags", ())]
    # The same state and batch with the next step's draws: other views,
    # so another loss and other updates.
    values = [torch_step._values(group) for group in entry["groups"]]

    def run(noise):
        inputs = [[v.clone() for v in group] for group in values]
        outputs = entry["graph"](*inputs, step.last_batch, noise)
        return [t for group in inputs + list(outputs) for t in group]

    noise = torch_step.draw(entry["slots"])
    again = run(noise)
    assert all(torch.equal(a, b) for a, b in zip(run(noise), again))
    other = run(torch_step.draw(entry["slots"]))
    assert not all(torch.equal(a, b) for a, b in zip(other, again))


def test_traced_step_on_numpy_batches_weights_nobody_left_out(graph_only):
    """`train_on_batch` with NumPy arrays (not frozen into the graph); a
    weight the loss does not reach is left alone, as the eager step does;
    an assigned copy of a weight is the one before the update."""

    class Encoder(keras.layers.Layer):
        def build(self, shape):
            self.dense = keras.layers.Dense(8)
            self.unused = self.add_weight(shape=(3,), initializer="ones", name="unused")
            self.before = self.add_weight(shape=(3, 8), initializer="zeros", name="before",
                                          trainable=False)

        def call(self, images, training=False):
            h = self.dense(keras.ops.mean(images, axis=(1, 2)))
            if training:
                self.before.assign(keras.ops.stop_gradient(self.dense.kernel))
            return h

    def make(jit):
        keras.utils.set_random_seed(0)
        model = SimCLR(Encoder(), build("heads", {"name": "mlp", "output_dim": 8}, "head"), None,
                       build("losses", {"name": "nt_xent"}, "loss"))
        model.compile(optimizer=keras.optimizers.SGD(0.5, momentum=0.9, weight_decay=0.1),
                      jit_compile=jit)
        images, _ = _data()
        losses = [model.train_on_batch(images[i * BATCH:(i + 1) * BATCH], return_dict=True)["loss"]
                  for i in range(STEPS)]
        return model, losses

    eager, eager_losses = make(False)
    traced, traced_losses = make(True)
    assert isinstance(traced.train_function, torch_step.TracedStep)
    assert traced.train_function.failed is None
    np.testing.assert_allclose(traced_losses, eager_losses, rtol=1e-6)
    assert len(set(np.round(traced_losses, 6))) == STEPS  # three batches, not the first thrice
    for a, b in zip(eager.weights, traced.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b.value),
                                   keras.ops.convert_to_numpy(a.value), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(traced.encoder.unused.value), 1.0)


class _PythonReadsAValue(keras.layers.Layer):
    """An encoder whose Python reads a tensor's value every step: a traced
    graph would freeze it, so the step must not be traced."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(8)

    def call(self, images, training=False):
        h = self.dense(keras.ops.mean(images, axis=(1, 2)))
        if float(keras.ops.max(h)) > 1e9:  # data-dependent Python
            h = h * 0.5
        return h


def test_a_step_that_cannot_be_traced_trains_eagerly_with_one_warning(graph_only):
    def make(jit):
        keras.utils.set_random_seed(0)
        model = SimCLR(_PythonReadsAValue(), build("heads", {"name": "mlp", "output_dim": 8}, "head"),
                       build("augmenters", {"name": "simclr", "preset": "cifar10"}, "augment",
                             {"seed": 3}),
                       build("losses", {"name": "nt_xent"}, "loss"))
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        return model

    _, eager = _fit(make(False), epochs=1)
    model = make(True)
    with pytest.warns(UserWarning, match="could not be traced.*training eagerly") as caught:
        _, traced = _fit(model)
    assert len([w for w in caught if "could not be traced" in str(w.message)]) == 1
    assert model.train_function.failed
    # The failed first attempt left no trace: the seed generators were put
    # back, so the eager steps drew what a plain eager run draws.
    _, eager_two = _fit(make(False))
    for a, b in zip(eager_two, traced):
        np.testing.assert_array_equal(a, b)
    assert len(eager) == len(traced)


class _PythonReadsAValueOnSmallBatches(_PythonReadsAValue):
    """Traceable for full batches, not for the last, smaller one."""

    def call(self, images, training=False):
        h = self.dense(keras.ops.mean(images, axis=(1, 2)))
        if images.shape[0] < 2 * BATCH and float(keras.ops.max(h)) > 1e9:  # two views a batch
            h = h * 0.5
        return h


def test_a_batch_shape_that_cannot_be_traced_trains_eagerly_alone(graph_only):
    def make(jit):
        keras.utils.set_random_seed(0)
        model = SimCLR(_PythonReadsAValueOnSmallBatches(),
                       build("heads", {"name": "mlp", "output_dim": 8}, "head"),
                       build("augmenters", {"name": "simclr", "preset": "cifar10"}, "augment",
                             {"seed": 3}),
                       build("losses", {"name": "nt_xent"}, "loss"))
        model.compile(optimizer=LARS(0.1), jit_compile=jit)
        return model

    images, labels = _data()
    images, labels = images[:BATCH * 2 + 4], labels[:BATCH * 2 + 4]  # 2 full batches and 4

    def fit(model):
        model.fit(images, labels, epochs=2, batch_size=BATCH, shuffle=False, verbose=0)
        return [keras.ops.convert_to_numpy(v.value) for v in model.variables]

    eager = fit(make(False))
    model = make(True)
    model.make_train_function()
    step = model.train_function
    calls = []
    fallback = step.fallback
    step.fallback = lambda data: calls.append(data) or fallback(data)
    with pytest.warns(UserWarning, match=r"batches of shape \(4, 16, 16, 3\).*train eagerly") as caught:
        traced = fit(model)
    assert len([w for w in caught if "could not be traced" in str(w.message)]) == 1
    assert step.failed is None and len(step.graphs) == 1 and len(step.eager_shapes) == 1
    assert len(calls) == 2  # the small batch of each epoch
    for a, b in zip(eager, traced, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("draw", ["torch", "keras"])
def test_a_random_operation_outside_the_draws_is_refused(graph_only, draw):
    import torch

    class Noisy(keras.layers.Layer):
        def call(self, images, training=False):
            h = keras.ops.mean(images, axis=(1, 2))
            if draw == "torch":
                return h + torch.rand(1)  # torch's global generator
            return h + keras.random.uniform((1,))  # Keras' global seed generator

    def make(jit):
        keras.utils.set_random_seed(0)
        model = SimCLR(Noisy(), build("heads", {"name": "mlp", "output_dim": 8}, "head"), None,
                       build("losses", {"name": "nt_xent"}, "loss"))
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=jit)
        return model

    model = make(True)
    with pytest.warns(UserWarning, match="could not be traced"):
        _, traced = _fit(model, epochs=1)
    # The eager step then trains (nothing of the trace is left behind).
    _, eager = _fit(make(False), epochs=1)
    if draw == "keras":
        for a, b in zip(eager, traced):
            np.testing.assert_array_equal(a, b)


def test_a_failed_first_run_puts_every_variable_back(graph_only, monkeypatch):
    """The first run draws and updates the weights in place before it
    fails: the eager step then starts from where it would have."""
    run = torch_step.TracedStep._run

    def fails_after_running(self, entry, batch):
        run(self, entry, batch)
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(torch_step.TracedStep, "_run", fails_after_running)
    model = _simclr(True)
    with pytest.warns(UserWarning, match="simulated"):
        history, traced = _fit(model)
    eager_history, eager = _fit(_simclr(False))
    assert history == eager_history
    for a, b in zip(eager, traced):
        np.testing.assert_array_equal(a, b)


def test_mixed_float16_trains_eagerly_with_a_reason(graph_only):
    model = _simclr(True, precision="mixed_float16")
    with pytest.warns(UserWarning, match="loss scaling"):
        model.make_train_function()
    assert not isinstance(model.train_function, torch_step.TracedStep)


def test_only_true_traces_and_the_graph_runs_uncompiled_on_a_cpu(backend, monkeypatch):
    for requested in ("auto", False):
        model = _simclr(requested)
        model.make_train_function()
        assert not isinstance(model.train_function, torch_step.TracedStep)
    if backend == "torch":
        # On a CPU the traced graph runs uncompiled unless
        # CONTRASTIVE_TORCH_STEP says compile.
        monkeypatch.delenv("CONTRASTIVE_TORCH_STEP", raising=False)
        model = _simclr(True)
        _fit(model, epochs=1, steps=1)
        assert [entry["compiled"] for entry in model.train_function.graphs.values()] == [False]


def test_a_bad_step_mode_is_one_line_before_training(backend, tiny_arrays, tmp_path, monkeypatch,
                                                     capsys):
    if backend != "torch":
        pytest.skip("torch only")
    import yaml
    from contrastive_cli.main import main
    from helpers import tiny_spec

    file = tmp_path / "spec.yaml"
    file.write_text(yaml.safe_dump(tiny_spec(tiny_arrays, train={
        "batch_size": 16, "epochs": 1, "steps_per_epoch": 2, "verbose": 0, "jit_compile": True})))
    monkeypatch.setenv("CONTRASTIVE_TORCH_STEP", "fastest")
    with pytest.raises(SystemExit) as info:
        main(["train", str(file), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2
    assert err[-1] == ("error: CONTRASTIVE_TORCH_STEP: expected auto, compile or graph, "
                       "received 'fastest'")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_other_backends_keep_keras_compilation(backend):
    if backend == "torch":
        pytest.skip("torch: contrastive compiles the step")
    model = _simclr(True)
    assert model.jit_compile is True
    model.make_train_function()
    assert not isinstance(model.train_function, torch_step.TracedStep)


def test_compiled_step_matches_eager_to_rounding(backend, monkeypatch):
    """The real thing, inductor included (about half a minute to compile).
    Two steps (the first one's learning rate is 0): with inductor's
    vectorised CPU code the second step's encoder gradients came out up to
    5% off (`torch_step._compiled`)."""
    if backend != "torch":
        pytest.skip("torch only")
    monkeypatch.setenv("CONTRASTIVE_TORCH_STEP", "compile")
    eager_history, eager = _fit(_simclr(False), epochs=1, steps=2)
    model = _simclr(True)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="train.jit_compile")
        history, compiled = _fit(model, epochs=1, steps=2)
    assert model.train_function.failed is None
    assert all(entry["compiled"] for entry in model.train_function.graphs.values())
    for key in eager_history:
        np.testing.assert_allclose(history[key], eager_history[key], rtol=1e-5)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_a_resumed_traced_run_ends_with_the_eager_runs_weights(graph_only, tiny_arrays, tmp_path,
                                                               monkeypatch):
    """`train.jit_compile: true` through `contrastive train`: a run resumed
    from its epoch-2 checkpoint ends where an eager run ends."""
    from helpers import tiny_spec

    from contrastive.spec import resolve
    from contrastive.training import resume, train

    def spec(jit):
        return tiny_spec(
            tiny_arrays, augment={"name": "simclr", "preset": "cifar10"},
            optimizer={"name": "lars", "learning_rate": 0.3},
            train={"batch_size": 16, "epochs": 3, "steps_per_epoch": 2, "verbose": 0,
                   "jit_compile": jit},
            output={"tensorboard": False, "plot": False},
            eval={"knn": {"enabled": False}, "linear": {"enabled": False}})

    traced_steps = []
    run_graph = torch_step.TracedStep._run
    monkeypatch.setattr(torch_step.TracedStep, "_run",
                        lambda self, *a: traced_steps.append(1) or run_graph(self, *a))
    run, eager = tmp_path / "traced", tmp_path / "eager"
    train(resolve(spec(True)), out=run, log=lambda line: None)
    train(resolve(spec(False)), out=eager, log=lambda line: None)
    newest = run / "checkpoints" / "epoch-0003.weights.h5"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"epoch-0003\.weights\.h5"):
        assert resume(run, log=lambda line: None).results["epochs"] == 3
    assert len(traced_steps) == 3 * 2 + 2  # three epochs, then the third again

    def weights(folder):
        model = keras.saving.load_model(folder / "encoder.keras")
        return [np.asarray(w) for w in model.get_weights()]

    for traced, plain in zip(weights(run), weights(eager), strict=True):
        np.testing.assert_array_equal(traced, plain)
