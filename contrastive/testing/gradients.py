"""Value and gradient of Keras-ops code on the active backend."""

import numpy as np


def value_and_grad(fn, *arrays, jit=False):
    """The value of `fn(*arrays)` (a scalar written in `keras.ops`) and its
    gradient with respect to every argument, as NumPy arrays.

    Example:

    ```python
    value, (grad_a, grad_b) = value_and_grad(loss, z_a, z_b)
    ```

    Args:
        fn: a function of backend tensors returning a scalar.
        *arrays: float NumPy arrays, the points to differentiate at.
        jit: compile the computation (`jax.jit` on jax; the others run it
            as they are).

    Returns:
        `(value, [gradient of each argument])`; zeros for an argument the
        value does not depend on.
    """
    import keras

    backend = keras.backend.backend()
    arrays = [np.asarray(a) for a in arrays]
    if backend == "jax":
        import jax

        step = jax.value_and_grad(fn, argnums=tuple(range(len(arrays))))
        value, grads = (jax.jit(step) if jit else step)(*arrays)
        return np.asarray(value), [np.asarray(g) for g in grads]
    if backend == "torch":
        import torch

        inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
        value = fn(*inputs)
        grads = torch.autograd.grad(value, inputs, allow_unused=True)
        grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
        return value.detach().cpu().numpy(), [g.detach().cpu().numpy() for g in grads]
    if backend == "tensorflow":
        import tensorflow as tf

        inputs = [tf.Variable(a) for a in arrays]
        with tf.GradientTape() as tape:
            value = fn(*inputs)
        grads = tape.gradient(value, inputs, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return value.numpy(), [g.numpy() for g in grads]
    raise NotImplementedError(f"no gradient for the {backend} backend")
