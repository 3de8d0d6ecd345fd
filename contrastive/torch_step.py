"""The whole training step traced once and compiled, on torch (issue 14).

Keras on torch runs `fit`'s step eagerly, layer by layer; `jit_compile=True`
hands Keras' step to `torch.compile`, whose tracer breaks on Keras'
bookkeeping, falls back to eager for the parts it cannot trace and gives up
after its recompilation limit (measured: slower than eager). This module
compiles the step at the level where nothing breaks: `make_fx` runs the
step's Python once, on fake tensors, and records the torch operations it
issues (augmentation, forward, loss, backward, optimizer, batch-norm and
metric updates) as one graph over the model's variables, which
`torch.compile` (inductor) then compiles. The same Keras model, variables,
checkpoints and resume: the graph's inputs are the variables' own tensors,
which the optimizer updates in place as in the eager step, and what the
step assigns (batch-norm statistics, metrics) is copied back.

Random draws stay outside the graph: every draw of the augmenters goes
through `torch_speed.uniform`, whose call sites the trace records (shape,
range, seed generator, in order); each step draws them eagerly, exactly as
the eager step does, and passes them in. The traced graph therefore gives
the eager step's numbers bit for bit (with Keras' SGD within one rounding a
step, see `_sgd_update`); the compiled graph within float rounding.

The trace is valid while the step's Python does the same thing every step,
which is what every backend's compiled step already asks of a method (its
state in variables, see `contrastive.methods.base`). What would break that
is refused, and the step falls back to Keras' eager step with one warning:
Python that reads a tensor's value (fake tensors have none), a random
operation outside `torch_speed.uniform`, compiled metrics, `mixed_float16`'s
loss scaling, several processes or replicas. When a first batch shape was
traced and a later one (a smaller last batch, say) cannot be, only batches
of that shape train eagerly.

Used by `Method` on torch with `train.jit_compile: true`; `auto` (the
default) and `false` train eagerly: the compiled step has not run on a
GPU yet (`benchmarks/gpu.sh` checks it against the uncompiled graph and
times it), and `auto` turns it on for CUDA devices once it has. On a CUDA
device the traced graph is compiled by inductor; on a CPU it runs as it
is, the eager step's operations without Keras' Python (inductor's CPU
code takes about a minute to compile a ResNet-18 step there, and its
vectorised kernels came out wrong, see `_compiled`).
`CONTRASTIVE_TORCH_STEP=compile` or `graph` chooses for every device.
"""

import contextlib
import warnings

import keras

from contrastive.torch_switches import step_mode


class TracedTraining:
    """Mixin for a `keras.Model` (before it in the bases): on torch,
    `compile(jit_compile=True)` selects the traced step instead of Keras'
    `torch.compile` of its step, which is slower than eager; "auto" and
    False train eagerly. Inert on other backends."""

    def compile(self, *args, jit_compile="auto", **kwargs):
        if keras.backend.backend() == "torch":
            if jit_compile is True:
                step_mode()  # a bad CONTRASTIVE_TORCH_STEP is said before training
            object.__setattr__(self, "_torch_jit_compile", jit_compile)
            jit_compile = False
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        requested = self.__dict__.get("_torch_jit_compile", False)
        if requested is True and keras.backend.backend() == "torch" and not self.run_eagerly:
            reason = applies(self)
            if reason is None:
                self.train_function = TracedStep(self, self.train_function)
            else:
                warnings.warn(f"train.jit_compile: the torch train step is not compiled "
                              f"({reason}); training eagerly", stacklevel=2)
        return self.train_function


class NotTraceable(Exception):
    """The step cannot be traced into one graph (the message says why)."""


class Draws:
    """Stands in for `torch_speed.uniform` while a step is traced: records
    each call (`record`) or returns the draws made for it (`replay`)."""

    def __init__(self, mode, slots=None):
        self.mode = mode
        self.slots = [] if slots is None else slots
        self.values = None
        self.taken = 0

    def take(self, shape, minval, maxval, dtype, seed):
        if not all(isinstance(v, (int, float)) for v in (minval, maxval)):
            raise NotTraceable("a random draw with a tensor range")
        if not isinstance(seed, keras.random.SeedGenerator):
            raise NotTraceable("a random draw without a keras.random.SeedGenerator")
        slot = (tuple(shape), minval, maxval, dtype, seed)
        if self.mode == "record":
            self.slots.append(slot)
            return _zeros_like_draw(slot)
        if self.taken >= len(self.slots) or self.slots[self.taken] != slot:
            raise NotTraceable("the random draws differ between two traces of the step")
        value = self.values[self.taken]
        self.taken += 1
        return value


def draw(slots):
    """The values of the recorded draws for one step, drawn as the eager
    step draws them (advancing the same seed generators)."""
    from contrastive import torch_speed

    return [torch_speed.uniform(shape, minval, maxval, dtype, seed)
            for shape, minval, maxval, dtype, seed in slots]


def applies(model):
    """Why the traced step cannot run `model`, or None when it can."""
    if "train_step" in model.__dict__:
        return "the distribution replaced the train step (several processes)"
    distribution = model.__dict__.get("_distribution")
    if distribution is not None and getattr(distribution, "num_replicas", 1) > 1:
        return "several replicas"
    if getattr(model, "_compile_metrics", None) is not None:
        return "compiled metrics"
    if model.optimizer is None:
        return "no optimizer"
    if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
        return "mixed_float16's loss scaling decides in Python whether a step is applied"
    return None


class TracedStep:
    """`fit`'s train function on torch: the step traced (per input shape)
    and compiled. Call it as Keras calls its train function (a list of one
    batch); it returns the metrics' results.

    Args:
        model: a built, compiled `Method`.
        fallback: Keras' eager train function, used (with one warning) when
            the step cannot be traced.
        compile: compile the traced graph with `torch.compile`; False runs
            the traced graph as it is (the same operations as the eager
            step, without Keras' Python); None (`CONTRASTIVE_TORCH_STEP`,
            by default `auto`): compile on CUDA devices only.
    """

    def __init__(self, model, fallback, compile=None):
        self.model = model
        self.fallback = fallback
        if compile is None:
            mode = step_mode()
            compile = None if mode == "auto" else mode == "compile"
        self.compile = compile
        self.graphs = {}
        self.failed = None
        self.eager_shapes = {}
        self.last_batch = None

    def __call__(self, data):
        if self.failed is not None:
            return self.fallback(data)
        import torch

        batch = keras.tree.map_structure(_to_tensor, data[0])
        key = _signature(batch)
        if key in self.eager_shapes:
            return self.fallback(data)
        entry = self.graphs.get(key)
        fresh = entry is None
        if not fresh:
            self._write_back(entry, self._run(entry, batch))
        else:
            # Tracing has no side effects (fake tensors, a stateless scope);
            # the first run draws (advancing the seed generators) and
            # updates variables in place, so everything is put back if it
            # fails (compilation happens in that run).
            # Keras creates its global seed generator on first use: not
            # inside the trace, where its state would be a fake tensor.
            from keras.src.random.seed_generator import global_seed_generator

            global_seed_generator()
            saved = [(v, v.value.detach().clone()) for group in self._state() for v in group]
            try:
                entry = self._trace(batch)
                self._write_back(entry, self._run(entry, batch))
            except Exception as exc:  # noqa: BLE001 (the eager step then says what is wrong, if anything)
                with torch.no_grad():
                    for variable, value in saved:
                        variable.value.copy_(value)
                del saved
                reason = [line for line in str(exc).strip().splitlines() if line.strip()]
                reason = f"{type(exc).__name__}: {reason[0] if reason else 'no message'}"
                if self.graphs:
                    # Other batch shapes have their graphs: only this one goes eager.
                    self.eager_shapes[key] = reason
                    warnings.warn(
                        "train.jit_compile: the torch train step could not be traced for "
                        f"batches of shape {_shapes(batch)} ({reason}); those batches "
                        "train eagerly", stacklevel=2)
                else:
                    self.failed = reason
                    warnings.warn(
                        "train.jit_compile: the torch train step could not be traced into one "
                        f"graph ({reason}); training eagerly", stacklevel=2)
                return self.fallback(data)
            del saved
            self.graphs[key] = entry
        self.last_batch = batch
        return self.model.get_metrics_result()

    # Tracing ---------------------------------------------------------------

    def _state(self):
        model = self.model
        return (list(model.trainable_variables), list(model.non_trainable_variables),
                list(model.optimizer.variables), list(model.metrics_variables))

    def _trace(self, batch):
        import torch
        from keras.src.backend.torch.core import get_device
        from torch.fx.experimental.proxy_tensor import make_fx

        from contrastive import torch_speed

        groups = self._state()
        values = [_values(group) for group in groups]
        record = Draws("record")
        with torch_speed.drawing(record):
            make_fx(self._step_function(groups, record), tracing_mode="fake")(*values, batch, [])
        replay = Draws("replay", record.slots)
        placeholders = [_zeros_like_draw(slot) for slot in record.slots]
        step = self._step_function(groups, replay)
        with torch_speed.drawing(replay):
            graph = make_fx(step, tracing_mode="fake")(*values, batch, placeholders)
        if replay.taken != len(record.slots):
            raise NotTraceable("the random draws differ between two traces of the step")
        _check_random_free(graph)
        device = torch.device(get_device())
        compile = self.compile if self.compile is not None else device.type == "cuda"
        return {
            "graph": graph,
            "compiled": compile,
            "run": _compiled(graph, device) if compile else graph,
            "slots": record.slots,
            "groups": groups,
            "changed": step.changed,
        }

    def _step_function(self, groups, draws):
        import torch
        from keras.src.backend.common.stateless_scope import StatelessScope
        from keras.src.trainers import data_adapters

        model = self.model
        trainable, non_trainable, _, metric_variables = groups
        by_id = {id(v): i for i, v in enumerate(trainable)}
        order = [by_id[id(v)] for v in model.optimizer._trainable_variables]

        def step(tv, ntv, ov, mv, batch, noise):
            draws.values, draws.taken = noise, 0
            leaves = [t.detach().requires_grad_(True) for t in tv]
            mapping = (list(zip(trainable, leaves)) + list(zip(non_trainable, ntv))
                       + list(zip(metric_variables, mv)))
            x, y, sample_weight = data_adapters.data_adapter_utils.unpack_x_y_sample_weight(batch)
            with StatelessScope(state_mapping=mapping) as scope:
                y_pred = model(x, training=True)
                loss = model._compute_loss(x=x, y=y, y_pred=y_pred,
                                           sample_weight=sample_weight, training=True)
                model._loss_tracker.update_state(
                    loss, sample_weight=next(i for i in keras.tree.flatten(x)
                                             if i is not None).shape[0])
                loss = model.optimizer.scale_loss(loss)
                new_ntv = [_current(scope, v, old) for v, old in zip(non_trainable, ntv)]
                new_mv = [_current(scope, v, old) for v, old in zip(metric_variables, mv)]
            # An assigned value may share the storage of a weight (an
            # assigned `stop_gradient(kernel)`) that the optimizer is about
            # to update in place: the value assigned is the one before.
            new_ntv = [new if new is old else new.clone() for new, old in zip(new_ntv, ntv)]
            new_mv = [new if new is old else new.clone() for new, old in zip(new_mv, mv)]
            # None for a variable the loss does not reach: the optimizer
            # skips it, as in the eager step.
            gradients = torch.autograd.grad(loss, leaves, allow_unused=True)
            # Keras' torch optimizers update the variables in place: the
            # graph mutates its inputs, which are the variables' own
            # tensors, so that nothing is copied back.
            with _traceable(model.optimizer):
                new_tv, new_ov = model.optimizer.stateless_apply(
                    ov, [gradients[i] for i in order], [tv[i] for i in order])
            restored = [None] * len(tv)
            for position, i in enumerate(order):
                restored[i] = new_tv[position]
            # What is a new tensor (an assignment) is written back; what is
            # the input itself was updated in place or not at all.
            step.changed = [[i for i, (new, old) in enumerate(zip(news, olds)) if new is not old]
                            for news, olds in ((restored, tv), (new_ntv, ntv), (new_ov, ov),
                                               (new_mv, mv))]
            return [[news[i] for i in indices] for news, indices in
                    zip((restored, new_ntv, new_ov, new_mv), step.changed)]

        return step

    # Running ---------------------------------------------------------------

    def _run(self, entry, batch):
        noise = draw(entry["slots"])
        values = [_values(group) for group in entry["groups"]]
        return entry["run"](*values, batch, noise)

    def _write_back(self, entry, outputs):
        import torch

        with torch.no_grad():
            for group, indices, new in zip(entry["groups"], entry["changed"], outputs):
                targets = [group[i].value for i in indices]
                if targets:
                    torch._foreach_copy_(targets, [n.to(t.dtype) for n, t in zip(new, targets)])


def _sgd_update(optimizer, grads, variables, learning_rate):
    """Keras' torch SGD update (keras/src/backend/torch/optimizers/
    torch_sgd.py, 3.15) with the learning rate kept a tensor: Keras passes
    it to torch as `alpha`, a Python number, which a traced graph would
    freeze at its first value."""
    import torch

    keras_variables = variables
    variables = [v.value for v in variables]
    step = torch._foreach_mul(grads, -learning_rate)
    if optimizer.momentum == 0:
        torch._foreach_add_(variables, step)
        return
    bufs = [optimizer.momentums[optimizer._get_variable_index(v)].value for v in keras_variables]
    torch._foreach_mul_(bufs, optimizer.momentum)
    torch._foreach_add_(bufs, step)
    if optimizer.nesterov:
        torch._foreach_add_(variables, step)
        torch._foreach_add_(variables, bufs, alpha=optimizer.momentum)
    else:
        torch._foreach_add_(variables, bufs)


@contextlib.contextmanager
def _traceable(optimizer):
    """Inside the block, Keras' torch SGD, which reads its learning rate as
    a Python number, uses a version that does not (Adadelta does too, in
    3.15, and is not traceable)."""
    from keras.src.backend.torch.optimizers import torch_sgd

    inner = getattr(optimizer, "inner_optimizer", optimizer)
    patched = type(inner) is torch_sgd.SGD
    if patched:
        inner._parallel_update_step = lambda g, v, lr: _sgd_update(inner, g, v, lr)
    try:
        yield
    finally:
        if patched:
            del inner._parallel_update_step


def _values(variables):
    return [v.value.detach() for v in variables]


def _current(scope, variable, old):
    value = scope.get_current_value(variable)
    return old if value is None else value


def _zeros_like_draw(slot):
    import torch
    from keras.src.backend.torch.core import get_device

    shape, _, _, dtype, _ = slot
    return torch.zeros(shape, dtype=getattr(torch, dtype), device=get_device())


def _to_tensor(x):
    """A batch leaf as a torch tensor (`train_on_batch` passes NumPy
    arrays on, which a trace would record as constants)."""
    import torch

    if x is None or isinstance(x, torch.Tensor):
        return x
    return keras.ops.convert_to_tensor(x)


def _signature(batch):
    def leaf(x):
        shape = getattr(x, "shape", None)
        return (tuple(shape), str(x.dtype), str(x.device)) if shape is not None else repr(x)

    return repr(keras.tree.map_structure(leaf, batch))


def _shapes(batch):
    """The batch's leaf shapes, for a message: `(8, 32, 32, 3), (8,)`."""
    return ", ".join(str(tuple(x.shape)) for x in keras.tree.flatten(batch)
                     if getattr(x, "shape", None) is not None)


def _check_random_free(graph):
    import torch

    for node in graph.graph.nodes:
        if node.op != "call_function":
            continue
        if torch.Tag.nondeterministic_seeded in getattr(node.target, "tags", ()):
            raise NotTraceable(f"a random operation ({node.target}) outside torch_speed.uniform")


def _compiled(graph, device):
    import torch

    options = None
    if device.type == "cpu":
        # Inductor's vectorised CPU code (torch 2.13) computes this step's
        # encoder gradients up to 5% off on some batches (tests/
        # test_torch_step.py); without vectorisation they agree with the
        # uncompiled graph to 2e-5.
        options = {"cpp.simdlen": 1}
    return torch.compile(graph, dynamic=False, options=options)
