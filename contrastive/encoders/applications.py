"""`keras.applications` networks as encoders f: ConvNeXt, EfficientNet(V2),
MobileNet(V2/V3), ResNet(V2), DenseNet, VGG, Inception, Xception, NASNet.

Each network is built without its classifier (`include_top=False`), with
random weights (`weights=None`; SimCLR pretrains from scratch) and global
average pooling, for the input shape the layer is first built with. h is
the pooled feature vector.

Input scaling: contrastive's encoders receive float32 images in [0, 1],
while every `keras.applications` network expects pixels in [0, 255]
followed by its family's own convention. The adapter multiplies by 255 and
applies that convention, exactly as the family's `preprocess_input` does:

* `pixels`: ConvNeXt, EfficientNet, EfficientNetV2 and MobileNetV3 carry
  their own rescaling and normalization layers (`include_preprocessing`
  left on) and take [0, 255] as is;
* `tf`: ResNet V2, MobileNet, MobileNetV2, Inception, Xception and NASNet
  take [-1, 1];
* `torch`: DenseNet takes [0, 1] normalized by the ImageNet mean and
  standard deviation;
* `caffe`: ResNet (v1) and VGG take BGR [0, 255] less the ImageNet mean.
"""

from typing import Literal

import keras
from keras import ops

from contrastive.registry import register

_FAMILIES = {
    "pixels": (
        "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge",
        *(f"EfficientNetB{i}" for i in range(8)),
        *(f"EfficientNetV2B{i}" for i in range(4)),
        "EfficientNetV2S", "EfficientNetV2M", "EfficientNetV2L",
        "MobileNetV3Small", "MobileNetV3Large",
    ),
    "tf": (
        "ResNet50V2", "ResNet101V2", "ResNet152V2", "MobileNet", "MobileNetV2",
        "InceptionV3", "InceptionResNetV2", "Xception", "NASNetMobile", "NASNetLarge",
    ),
    "torch": ("DenseNet121", "DenseNet169", "DenseNet201"),
    "caffe": ("ResNet50", "ResNet101", "ResNet152", "VGG16", "VGG19"),
}
# model name -> its family's input convention (see the module docstring)
CONVENTIONS = {model: family for family, models in _FAMILIES.items() for model in models}
MODELS = tuple(sorted(CONVENTIONS))

_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def preprocess(images, convention):
    """Maps float images in [0, 1] to what a network of `convention` takes.

    Args:
        images: float images NHWC (RGB) in [0, 1].
        convention: `"pixels"`, `"tf"`, `"torch"` or `"caffe"`.

    Returns:
        The images as the family's `preprocess_input` returns `255 * images`.
    """
    if convention == "pixels":
        return images * 255.0
    if convention == "tf":
        return images * 2.0 - 1.0
    if convention == "torch":
        mean = ops.convert_to_tensor(_TORCH_MEAN, images.dtype)
        std = ops.convert_to_tensor(_TORCH_STD, images.dtype)
        return (images - mean) / std
    bgr = ops.flip(images, axis=-1) * 255.0
    return bgr - ops.convert_to_tensor(_CAFFE_MEAN_BGR, images.dtype)


@register("encoders", "keras_application")
class KerasApplication(keras.layers.Layer):
    """A `keras.applications` network without its classifier, pooled: h.

    The network is built with `weights=None`, `include_top=False` and
    `pooling="avg"` for the image shape this layer is first built with, so
    any side the network accepts works (most take 32 and above; Inception
    and InceptionResNet 75, Xception 71). Images in [0, 1] are scaled to
    the network's own input convention (see the module docstring), so the
    network's built-in rescaling layers, where it has them, stay on. The
    network follows the global dtype policy (`train.precision` sets it).

    Example:

    ```python
    encoder = contrastive.build(
        "encoders", {"name": "keras_application", "model": "ConvNeXtTiny"})
    h = encoder(images)              # (B, 768) for float32 images in [0, 1]
    ```

    Args:
        model: the name of a function of `keras.applications`, e.g.
            `"ResNet50V2"`, `"ConvNeXtTiny"`, `"EfficientNetV2B0"`,
            `"MobileNetV3Small"`.

    Call arguments:
        images: float32 images NHWC in [0, 1].
        training: batch norm uses batch statistics and updates its averages.

    Returns:
        h of shape `(B, D)`, D the network's last feature width (576 for
        MobileNetV3Small, 768 for ConvNeXtTiny, 2048 for ResNet50V2, ...).
    """

    def __init__(self, model: Literal[MODELS] = "MobileNetV3Small", **kwargs):
        super().__init__(**kwargs)
        if model not in CONVENTIONS:
            raise ValueError(
                f"model: expected one of {', '.join(MODELS)}, received {model!r}")
        self.model = model
        self.convention = CONVENTIONS[model]
        self.network = None

    def build(self, input_shape):
        shape = tuple(input_shape[1:])
        try:
            self.network = getattr(keras.applications, self.model)(
                include_top=False, weights=None, input_shape=shape, pooling="avg")
        except ValueError as exc:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise ValueError(
                f"model: {self.model} cannot take images of shape {shape}: {first}"
            ) from None

    def call(self, images, training=False):
        return self.network(preprocess(images, self.convention), training=training)

    def compute_output_shape(self, input_shape):
        if self.network is None:
            self.build(input_shape)
        return (input_shape[0], self.network.output_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(model=self.model)
        return config
