"""Speed-ups of the train step on the torch backend (issue 14).

Keras on torch runs every layer eagerly in NHWC and converts to NCHW around
each convolution; these switches remove what costs the most there without
changing the model: the same Keras layers and variables, the same
checkpoints (every variable keeps its Keras shape and values; only its
memory strides may differ), the same numbers.

Switches, all on by default on the torch backend and inert elsewhere:

- `layout`: the ResNet's layers run channels-first internally on torch
  (one transpose, a view, at the encoder's input; the tensors keep torch's
  channels-last memory format, so no convolution copies its input, where
  Keras' channels-last convolution copies it twice).
- `kernels`: convolution kernels (and the optimizer's slots for them) are
  stored so that torch's channels-last OIHW view of the Keras HWIO kernel
  needs no copy (forward) and its gradient lands in the variable without
  one (backward); applied by `prepare(model)` / `callback()` once the
  model and optimizer are built.
- `batchnorm`: the batch norms of the encoders and heads
  (`torch_speed.BatchNormalization`, a `keras.layers.BatchNormalization`
  with the same variables and formulas) run as one fused
  `torch.nn.functional.batch_norm` (forward and backward) instead of about
  ten element-wise ops and their float32 copies; the moving averages are
  updated as Keras does. Results differ from Keras' op-by-op version only
  by float rounding (another summation order).
- `calls`: inside the encoders and heads, a built sub-layer whose input
  already has its compute dtype (and whose variables the enclosing
  autocast scope already casts as it would) is run through its `call`
  directly (`call_layer`), skipping Keras' per-call bookkeeping (input
  conversion, input-spec check, call context, masks, name and autocast
  scopes, torch module hooks); the same ops run on the same variables.
- `foreach`: LARS updates all variables with `torch._foreach_*` ops over
  lists (Keras' SGD, Adam and others on torch already do) instead of about
  fifteen ops per variable; the trust ratios as one vector, no host sync.

- `compile_augment` (opt-in): `SimCLRAugment`'s image ops (everything after
  the random draws) run as one `torch.compile`d graph in an eager step
  (with `train.jit_compile: true`, `contrastive.torch_step` traces the
  whole step and the augmentation is part of that graph anyway). The first call compiles
  (tens of seconds); fused arithmetic may round differently in the last
  bit.

`CONTRASTIVE_TORCH_FAST=0` turns every switch off, `1` (the default) all
but the opt-in ones, `all` all; a comma-separated list of names
(`layout,kernels`) turns on only those. `override(...)` sets switches for
a block (benchmarks compare variants in one process with it).
"""

import contextlib

import keras

from contrastive.torch_switches import OPT_IN, SWITCHES, fast_switches  # noqa: F401 (OPT_IN re-exported)

_overrides = {}


def is_torch():
    return keras.backend.backend() == "torch"


def enabled(name):
    """True when switch `name` is on and the backend is torch."""
    if name not in SWITCHES:
        raise ValueError(f"unknown switch {name!r}; expected one of {', '.join(SWITCHES)}")
    if not is_torch():
        return False
    if name in _overrides:
        return _overrides[name]
    return name in fast_switches()


@contextlib.contextmanager
def override(**switches):
    """Sets switches (`layout=False`, ...) inside the block."""
    for name in switches:
        if name not in SWITCHES:
            raise ValueError(f"unknown switch {name!r}; expected one of {', '.join(SWITCHES)}")
    saved = dict(_overrides)
    _overrides.update({k: bool(v) for k, v in switches.items()})
    try:
        yield
    finally:
        _overrides.clear()
        _overrides.update(saved)


# Layout -------------------------------------------------------------------


def internal_data_format():
    """The data format the layers of an encoder should use internally:
    channels_first with `layout` on torch, else channels_last."""
    return "channels_first" if enabled("layout") else "channels_last"


def to_internal(images, data_format):
    """NHWC images to the internal format (a view on torch)."""
    from keras import ops

    if data_format == "channels_first":
        return ops.transpose(images, (0, 3, 1, 2))
    return images


def internal_shape(shape, data_format):
    """An NHWC shape in the internal format."""
    shape = tuple(shape)
    if data_format == "channels_first":
        return (shape[0], shape[3], shape[1], shape[2])
    return shape


def _channels_last_kernel_strides(shape):
    kh, kw, cin, _ = shape
    return (kw * cin, cin, 1, kh * kw * cin)


def _restride(param, strides):
    """Gives the parameter `param` new memory strides in place: same object,
    same shape and values, only `.data` replaced."""
    import torch

    with torch.no_grad():
        fresh = torch.empty_strided(param.shape, strides, dtype=param.dtype, device=param.device)
        fresh.copy_(param)
    param.data = fresh


def _optimizers(optimizer):
    while optimizer is not None:
        yield optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)


def store_kernels_channels_last(model):
    """Re-strides the kernel of every built 2-D convolution in `model`
    (torch only) so that torch's OIHW view of it, `permute(3, 2, 0, 1)`, is
    channels-last contiguous: memory order (out, kh, kw, in). Keras'
    channels-last convolution then finds the kernel in the format it
    converts to (no copy), and the kernel gradient comes back in the same
    strides (no copy into `.grad`).

    The variable keeps its Keras shape (kh, kw, in, out) and its values;
    the parameter is the same object (only `.data` is replaced), so the
    torch module registry, the optimizer and checkpoints see no difference.
    Then every optimizer variable that shadows a re-strided kernel
    (momentum and the like: a list of the optimizer's variables aligned
    with its trainable variables) gets the same strides, so that the
    update's element-wise ops do not mix layouts. Call it once the model
    and its optimizer are built (`Prepare` does, at the start of `fit`);
    skips variables without values. Returns how many tensors it re-strided.
    """
    import keras

    if not is_torch():
        return 0
    done = 0
    layers = model._flatten_layers(include_self=True, recursive=True)
    restrided = {}
    for sub in layers:
        if not isinstance(sub, keras.layers.Conv2D) or not sub.built:
            continue
        variable = getattr(sub, "kernel", None)
        param = getattr(variable, "_value", None)
        if param is None or param.ndim != 4 or param.is_meta:
            continue
        strides = _channels_last_kernel_strides(tuple(param.shape))
        restrided[id(variable)] = strides
        if param.stride() != strides:
            _restride(param, strides)
            done += 1
    for optimizer in _optimizers(getattr(model, "optimizer", None)):
        if not getattr(optimizer, "built", False):
            continue
        trainable = list(getattr(optimizer, "_trainable_variables", []))
        for value in list(vars(optimizer).values()):
            if not isinstance(value, (list, tuple)) or len(value) != len(trainable):
                continue
            for reference, slot in zip(trainable, value):
                strides = restrided.get(id(reference))
                param = getattr(slot, "_value", None)
                if (strides is None or not isinstance(slot, keras.Variable) or param is None
                        or tuple(param.shape) != tuple(reference.shape)):
                    continue
                if param.stride() != strides:
                    _restride(param, strides)
                    done += 1
    return done


def prepare(model):
    """Applies the switches that act on built variables (`kernels`) to
    `model` and its optimizer. Idempotent and cheap to repeat."""
    if enabled("kernels"):
        return store_kernels_channels_last(model)
    return 0


def callback():
    """A Keras callback that calls `prepare(model)` at the start of `fit`
    (after Keras built the model and the optimizer, before the first
    step)."""
    import keras

    class Prepare(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            prepare(self.model)

    return Prepare()


# Direct calls ---------------------------------------------------------------


def _direct_call_applies(layer, x):
    if not getattr(layer, "built", False) or not enabled("calls"):
        return False
    import torch

    if not isinstance(x, torch.Tensor) or getattr(layer, "_forward_hooks", None):
        return False
    from keras.src.backend.common.variables import get_autocast_scope

    compute = layer.compute_dtype
    if _DTYPE_NAMES.get(x.dtype) != compute:
        return False
    scope = get_autocast_scope()
    if scope is None:
        return compute == layer.variable_dtype
    return layer.autocast and scope.dtype == compute


_DTYPE_NAMES = {}


def _dtype_names():
    import torch

    return {getattr(torch, name): name for name in
            ("float16", "bfloat16", "float32", "float64", "int32", "int64", "uint8", "bool")}


def call_layer(layer, x, **kwargs):
    """`layer(x, **kwargs)`, or `layer.call(x, **kwargs)` when switch
    `calls` is on and skipping `Layer.__call__` changes nothing: the layer
    is built, `x` is a torch tensor of the layer's compute dtype (no input
    cast) and the autocast scope in force is the one `__call__` would set.
    Pass `training` explicitly (there is no call context to inherit it
    from)."""
    if not _DTYPE_NAMES and is_torch():
        _DTYPE_NAMES.update(_dtype_names())
    if _direct_call_applies(layer, x):
        return layer.call(x, **kwargs)
    return layer(x, **kwargs)


# Convolution ----------------------------------------------------------------


def channels_last_kernel(kernel):
    """A Keras HWIO kernel (torch tensor) whose OIHW view is channels-last
    contiguous: itself when it already is (`kernels`), else a
    differentiable copy with those strides (the copy Keras' channels-last
    convolution makes too)."""
    if kernel.ndim != 4 or kernel.stride() == _channels_last_kernel_strides(tuple(kernel.shape)):
        return kernel
    return kernel.permute(3, 0, 1, 2).contiguous().permute(1, 2, 3, 0)


class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` that, on torch in `channels_first` (the
    `layout` switch), hands torch a channels-last kernel as Keras'
    `channels_last` path does (torch would otherwise copy the permuted
    kernel element by element). Same variables, config and auto-generated
    names (the class name is Keras'); elsewhere exactly Keras'."""

    def convolution_op(self, inputs, kernel):
        if self.data_format == "channels_first" and is_torch():
            import torch

            if isinstance(kernel, keras.Variable):
                kernel = kernel.value
            if isinstance(kernel, torch.Tensor) and kernel.device.type != "meta":
                kernel = channels_last_kernel(kernel)
        return super().convolution_op(inputs, kernel)


# Random draws ---------------------------------------------------------------

_INT32 = 2**32


def _wrap_int32(value):
    return (value + 2**31) % _INT32 - 2**31


def _next_seed(generator):
    """`SeedGenerator.next()` on torch without a host sync: returns the
    integer Keras' `torch_seed_generator` seeds torch with and advances the
    state variable by [0, 1] on its device, as Keras does. The state's
    value is kept on the host; it is read from the device (once) when the
    state tensor was written by anything else (its version counter)."""
    import torch

    state = generator.state.value
    mirror = generator.__dict__.get("_torch_speed_mirror")
    if mirror is not None and mirror[0] is state and mirror[1] == state._version:
        first, second = mirror[2], mirror[3]
    else:
        first, second = (int(v) for v in state.tolist())
    with torch.no_grad():
        step = generator.__dict__.get("_torch_speed_step")
        if step is None or step.device != state.device or step.dtype != state.dtype:
            step = torch.tensor([0, 1], dtype=state.dtype, device=state.device)
            generator.__dict__["_torch_speed_step"] = step
        state.add_(step)
    generator.__dict__["_torch_speed_mirror"] = (state, state._version, first,
                                                 _wrap_int32(second + 1))
    return (first + second) & 0xFFFFFFFF


_draws = None


@contextlib.contextmanager
def drawing(draws):
    """Inside the block, `uniform` calls `draws.take(shape, minval, maxval,
    dtype, seed)` instead of drawing (`torch_step` traces a step so)."""
    global _draws
    saved, _draws = _draws, draws
    try:
        yield draws
    finally:
        _draws = saved


def uniform(shape, minval=0.0, maxval=1.0, dtype="float32", seed=None):
    """`keras.random.uniform`; with switch `seeds` on torch and a
    `SeedGenerator` seed, the same numbers without a host sync."""
    if _draws is not None:
        return _draws.take(shape, minval, maxval, dtype, seed)
    if not (enabled("seeds") and isinstance(seed, keras.random.SeedGenerator)):
        return keras.random.uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)
    import torch
    from keras.src.backend.common.stateless_scope import in_stateless_scope
    from keras.src.backend.torch.core import get_device, to_torch_dtype

    device = get_device()
    if device == "meta" or in_stateless_scope() or torch.compiler.is_compiling():
        return keras.random.uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(_next_seed(seed))
    requested = tuple(shape)
    draw = torch.rand(size=requested or (1,), generator=generator, dtype=to_torch_dtype(dtype),
                      device=device)
    output = (maxval - minval) * draw + minval
    return output[0] if not requested else output


# Augmentation ---------------------------------------------------------------


def apply_stages(layer, images, params):
    """`layer.apply(images, params)`, through `torch.compile` (cached on the
    layer) with switch `compile_augment` in an eager torch step (a traced
    step compiles it with the rest)."""
    if enabled("compile_augment") and _draws is None:
        import torch

        if not torch.compiler.is_compiling():
            compiled = layer.__dict__.get("_torch_speed_compiled")
            if compiled is None:
                compiled = torch.compile(layer.apply)
                layer.__dict__["_torch_speed_compiled"] = compiled
            return compiled(images, params)
    return layer.apply(images, params)


# Batch norm -----------------------------------------------------------------


class BatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training and inference passes
    are one fused `torch.nn.functional.batch_norm` on torch (switch
    `batchnorm`); Keras' own `call` elsewhere and whenever the fused pass
    does not apply (a mask, renorm, `synchronized`, or `_moments` replaced
    on the instance, as synchronized batch norm across processes does).

    Same variables, same config, same auto-generated names (the class name
    is Keras'); the same formulas: normalisation with the biased batch
    variance, moving averages `m * momentum + stat * (1 - momentum)` with
    the biased variance, output in the layer's compute dtype; bfloat16 and
    float16 inputs are cast to float32 first and the result back, as Keras
    does, so mixed precision rounds at the same points.
    """

    def _fused_applies(self, inputs, mask):
        if mask is not None or self.renorm or self.synchronized:
            return False
        if "_moments" in self.__dict__ or not enabled("batchnorm"):
            return False
        import torch

        if not isinstance(inputs, torch.Tensor) or inputs.device.type == "meta":
            return False
        return inputs.ndim >= 2 and isinstance(self.axis, int)

    def call(self, inputs, training=None, mask=None):
        if not self._fused_applies(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import torch
        import torch.nn.functional as F

        axis = self.axis % inputs.ndim
        x = inputs if axis == 1 else torch.movedim(inputs, axis, 1)
        if x.dtype == torch.float64:
            dtype = torch.float64
        else:
            dtype = torch.float32
        gamma = self.gamma.value if self.scale else None
        beta = self.beta.value if self.center else None
        if gamma is not None and gamma.dtype != dtype:
            gamma = gamma.to(dtype)
        if beta is not None and beta.dtype != dtype:
            beta = beta.to(dtype)
        if x.dtype != dtype:
            # As Keras: the statistics and the normalisation in float32,
            # the result cast back to the compute dtype (the rounding points
            # of mixed precision stay where Keras has them).
            x = x.to(dtype)
        moving_mean = self.moving_mean.value
        moving_variance = self.moving_variance.value
        if training and self.trainable:
            channels = x.shape[1]
            count = x.numel() // channels
            # momentum 1: the buffers receive the batch mean and the
            # unbiased batch variance.
            mean = torch.zeros(channels, dtype=dtype, device=x.device)
            unbiased = torch.zeros(channels, dtype=dtype, device=x.device)
            out = F.batch_norm(x, mean, unbiased, gamma, beta, True, 1.0, self.epsilon)
            with torch.no_grad():
                variance = unbiased * ((count - 1) / count) if count > 1 else unbiased * 0
                m = self.momentum
                self.moving_mean.assign(moving_mean.to(dtype) * m + mean * (1.0 - m))
                self.moving_variance.assign(moving_variance.to(dtype) * m + variance * (1.0 - m))
        else:
            out = F.batch_norm(x, moving_mean.to(dtype), moving_variance.to(dtype), gamma, beta,
                               False, 0.0, self.epsilon)
        if axis != 1:
            out = torch.movedim(out, 1, axis)
        compute = keras.backend.standardize_dtype(self.compute_dtype)
        if keras.backend.standardize_dtype(out.dtype) != compute:
            out = out.to(getattr(torch, compute))
        return out
