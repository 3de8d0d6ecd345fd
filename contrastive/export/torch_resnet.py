"""A ResNet encoder as a PyTorch state dict in torchvision's layout.

The keys and layouts are those of `torchvision.models.resnet18` ... `resnet152`
(`conv1.weight`, `bn1.running_mean`, `layer1.0.conv1.weight`,
`layer1.0.downsample.0.weight`, ...; kernels OIHW), without `fc`. Both
networks are ResNet v1.5 (the stride of a bottleneck in its 3x3
convolution) with batch-norm epsilon 1e-5; Keras' momentum 0.9 is torch's
0.1. Load it into torchvision with the lines `loading_code` gives, which
make these changes where needed:

* `model.fc = torch.nn.Identity()`: the encoder's output is h, the pooled
  features.
* The CIFAR stem (a 3x3 stride-1 convolution, no max-pool):
  `model.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)` and
  `model.maxpool = torch.nn.Identity()`.
* ResNet-18/34: contrastive's first block has a projection shortcut, as in
  the official SimCLR code, where torchvision's `layer1.0` has none; it is
  exported as `layer1.0.downsample` (a 1x1 convolution and batch norm), and
  torchvision's model needs that module added before loading.
* Padding: the official code's "fixed padding" of strided convolutions is
  symmetric for odd kernels, exactly torchvision's (3 for the 7x7 stem, 1
  for 3x3, 0 for 1x1). The ImageNet stem's max-pool differs: "same"
  padding in TensorFlow's sense puts its one padding pixel after the input
  when the pooled side is even (every image side divisible by 4, 224
  included), where torchvision pads one pixel on both sides, so the windows
  are shifted by one pixel. For such sides `model.maxpool` becomes
  `Sequential(ZeroPad2d(...), MaxPool2d(3, 2))` (zeros are exact: the
  pooled values follow a ReLU); for odd pooled sides torchvision's own
  max-pool is already exact.

torchvision's model then takes the same float32 images in [0, 1], NCHW,
without ImageNet normalisation, and returns h.
"""

import numpy as np

from contrastive.errors import SpecError
from contrastive.files import written_atomically

TORCHVISION_DEPTHS = (18, 34, 50, 101, 152)
BASE_WIDTH = 64


def find_resnet(model):
    """The ResNet layer of a saved encoder model (`encoder.keras`).

    Raises:
        SpecError: on `--format`, the encoder is not one of contrastive's
            ResNets, or not one torchvision has (width x1, base width 64).
    """
    import keras

    from contrastive.encoders.resnet import ResNet

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    names = ", ".join(f"resnet{d}" for d in TORCHVISION_DEPTHS)
    if len(layers) != 1 or not isinstance(layers[0], ResNet):
        received = ", ".join(_encoder_name(layer) for layer in layers) or "no layer"
        raise SpecError(f"torchvision export: expected a run whose encoder is one of {names}, "
                        f"received {received}", "--format")
    resnet = layers[0]
    if resnet.width_multiplier != 1 or resnet.base_width != BASE_WIDTH:
        raise SpecError(
            "torchvision export: expected width_multiplier 1 and base_width 64 (torchvision's "
            f"ResNets), received width_multiplier {resnet.width_multiplier} and base_width "
            f"{resnet.base_width}", "--format")
    return resnet


def _encoder_name(layer):
    from contrastive.registry import get_registry

    for entry in get_registry("encoders").entries():
        if entry.obj is type(layer):
            return entry.name
    return type(layer).__name__


def _array(variable):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(variable), "float32")


def _conv_bn(unit, conv, bn):
    """`{key: array}` of a `_ConvBN` as torchvision's `conv` and `bn`."""
    norm = unit.norm
    return {
        # HWIO -> OIHW
        f"{conv}.weight": np.ascontiguousarray(_array(unit.conv.kernel).transpose(3, 2, 0, 1)),
        f"{bn}.weight": _array(norm.gamma),
        f"{bn}.bias": _array(norm.beta),
        f"{bn}.running_mean": _array(norm.moving_mean),
        f"{bn}.running_var": _array(norm.moving_variance),
        f"{bn}.num_batches_tracked": np.zeros((), "int64"),
    }


def state_dict(resnet):
    """`{key: NumPy array}` of a ResNet in torchvision's names and layouts,
    in torchvision's order, without `fc`."""
    arrays = _conv_bn(resnet.stem, "conv1", "bn1")
    blocks = iter(resnet.blocks)
    for stage, count in enumerate(resnet.blocks_per_stage, start=1):
        for index in range(count):
            block = next(blocks)
            prefix = f"layer{stage}.{index}"
            for i, unit in enumerate(block.branch, start=1):
                arrays.update(_conv_bn(unit, f"{prefix}.conv{i}", f"{prefix}.bn{i}"))
            if block.shortcut is not None:
                arrays.update(_conv_bn(block.shortcut, f"{prefix}.downsample.0",
                                       f"{prefix}.downsample.1"))
    return arrays


def max_pool_padding(image_shape):
    """`(left, right, top, bottom)` zero padding before a 3x3 stride-2
    max-pool that reproduces the ImageNet stem's "same" max-pool on
    `image_shape` `(H, W, C)`, or None where torchvision's (padding 1) is
    already exact."""
    pooled = [-(-side // 2) for side in image_shape[:2]]  # the stem's output sides
    if all(side % 2 for side in pooled):
        return None
    top, left = (1 if side % 2 else 0 for side in pooled)
    return (left, 1, top, 1)


def loading_code(resnet, image_shape, path):
    """The Python lines that load the exported state dict into torchvision."""
    width = BASE_WIDTH
    lines = [
        "import torch, torchvision",
        f"model = torchvision.models.resnet{resnet.depth}()",
        "model.fc = torch.nn.Identity()",
    ]
    if resnet.cifar_stem:
        lines += [f"model.conv1 = torch.nn.Conv2d(3, {width}, 3, 1, 1, bias=False)",
                  "model.maxpool = torch.nn.Identity()"]
    else:
        padding = max_pool_padding(image_shape)
        if padding is not None:
            lines.append("model.maxpool = torch.nn.Sequential(torch.nn.ZeroPad2d("
                         f"{padding}), torch.nn.MaxPool2d(3, 2))")
    if resnet.block_kind == "basic":
        lines.append("model.layer1[0].downsample = torch.nn.Sequential(torch.nn.Conv2d("
                     f"{width}, {width}, 1, bias=False), torch.nn.BatchNorm2d({width}))")
    lines += [f"model.load_state_dict(torch.load({str(path)!r}), strict=True)",
              "model.eval()  # float32 NCHW images in [0, 1], no ImageNet normalisation -> h"]
    return lines


def save(model, out):
    """Writes the state dict of the saved encoder `model` with `torch.save`.

    Returns:
        The lines that load it into torchvision (`loading_code`).

    Raises:
        SpecError: not a torchvision ResNet (`find_resnet`), or torch is
            not installed.
    """
    resnet = find_resnet(model)
    try:
        import torch
    except ImportError:
        raise SpecError("torchvision export needs torch installed: pip install torch",
                        "--format") from None
    tensors = {key: torch.from_numpy(value) for key, value in state_dict(resnet).items()}
    with written_atomically(out, replace=False) as tmp:
        torch.save(tensors, str(tmp))
    return loading_code(resnet, tuple(model.inputs[0].shape[1:]), out)
