"""A target network that follows an online one by an exponential moving
average, the part MoCo's key encoder and BYOL's target share."""

from keras import ops


def clone(layer, name):
    """A new layer of the same class and configuration (fresh weights),
    called `name`."""
    return type(layer).from_config({**layer.get_config(), "name": name})


def freeze(layers):
    """Marks every weight of `layers` non-trainable: the optimizer never
    sees them and no gradient reaches them. The layers stay trainable, so
    their batch norm uses batch statistics in training, as the online's."""
    for layer in layers:
        for variable in layer.weights:
            variable.trainable = False


def follow(targets, onlines, momentum, started):
    """Moves each target weight towards its online weight:
    `t <- momentum * t + (1 - momentum) * o`, for the online network's
    trainable weights (batch-norm moving statistics are each network's own).
    While `started` is 0, copies the online weights instead (the target
    starts as the online network).

    Both networks must have been built the same way, so that their weights
    come in the same order.
    """
    for target, online in zip(targets, onlines, strict=True):
        pairs = zip(target.weights, online.weights, strict=True)
        for t, o in pairs:
            if not o.trainable:
                continue
            value = ops.stop_gradient(ops.cast(o, t.dtype))
            moved = momentum * t + (1.0 - momentum) * value
            t.assign(ops.where(started > 0, moved, value))
