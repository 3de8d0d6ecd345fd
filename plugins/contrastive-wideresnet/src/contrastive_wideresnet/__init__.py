"""A Wide Residual Network encoder for contrastive (Zagoruyko and Komodakis 2016).

Installed, it is registered through the entry-point group
`contrastive.encoders` as `wide_resnet`:

```yaml
encoder: {name: wide_resnet, depth: 28, widen_factor: 2}
```
"""

__version__ = "0.1.0"

__all__ = ["WideResNet"]


def __getattr__(name):
    # Lazy, so that importing the package does not import Keras.
    if name == "WideResNet":
        from contrastive_wideresnet.encoder import WideResNet

        return WideResNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
