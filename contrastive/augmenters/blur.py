"""Random Gaussian blur, per image, as in the official SimCLR code."""

from typing import Literal

from keras import ops

from contrastive.augmenters._base import Augmenter, bernoulli, check_pair, uniform
from contrastive.registry import register
from contrastive.typecheck import PositiveInt, PositiveRange, Probability, Seed


def blur_radius(side, kernel_size=None):
    """The official rule: kernel_size = side // 10, radius = kernel_size // 2,
    so the kernel has 2 * radius + 1 taps (23 for 224 pixels, 3 for 32)."""
    kernel_size = side // 10 if kernel_size is None else kernel_size
    return kernel_size // 2


def gaussian_kernels(sigma, radius):
    """Normalised 1-D Gaussian kernels `(B, 2 * radius + 1)` for sigmas `(B,)`."""
    x = ops.cast(ops.arange(-radius, radius + 1), "float32")[None, :]
    sigma = ops.cast(sigma, "float32")[:, None]
    k = ops.exp(-(x * x) / (2.0 * sigma * sigma))
    return k / ops.sum(k, axis=1, keepdims=True)


def _pad(images, radius, axis, padding):
    if padding == "zero":
        widths = [(0, 0)] * 4
        widths[axis] = (radius, radius)
        return ops.pad(images, widths)
    n = images.shape[axis]
    index = list(range(radius, 0, -1)) + list(range(n)) + list(range(n - 2, n - 2 - radius, -1))
    return ops.take(images, ops.convert_to_tensor(index, "int32"), axis=axis)


def _blur_axis(images, kernels, radius, axis, padding):
    padded = _pad(images, radius, axis, padding)
    n = images.shape[axis]
    out = None
    for k in range(2 * radius + 1):
        part = padded[:, k:k + n] if axis == 1 else padded[:, :, k:k + n]
        term = part * ops.reshape(kernels[:, k], (-1, 1, 1, 1))
        out = term if out is None else out + term
    return out


def apply_blur(images, sigma, radius, padding="zero"):
    """Separable Gaussian blur of each image with its own sigma.

    Args:
        images: float32 `(B, H, W, C)`.
        sigma: `(B,)` standard deviations in pixels.
        radius: the kernel has `2 * radius + 1` taps; 0 returns the input.
        padding: `zero` (the official code's 'SAME' convolution) or
            `reflect` (mirror without repeating the edge pixel).
    """
    images = ops.convert_to_tensor(images, "float32")
    sigma = ops.convert_to_tensor(sigma, "float32")
    if radius <= 0:
        return images
    kernels = gaussian_kernels(sigma, radius)
    out = _blur_axis(images, kernels, radius, 1, padding)
    return _blur_axis(out, kernels, radius, 2, padding)


@register("augmenters", "gaussian_blur")
class RandomGaussianBlur(Augmenter):
    """Blurs each image with probability `p`, sigma uniform in `sigma`.

    The kernel has `2 * (kernel_size // 2) + 1` taps, with `kernel_size` the
    image height // 10 by default (the official code); images under 20
    pixels high are left unchanged unless `kernel_size` is given.

    Args:
        p: the probability of blurring an image.
        sigma: the range of the standard deviation, in pixels.
        kernel_size: the official `kernel_size` argument; null: height // 10.
        padding: `zero` (official, 'SAME' convolution) or `reflect`.
        seed: seeds the random draws.
    """

    def __init__(
        self,
        p: Probability = 0.5,
        sigma: PositiveRange = (0.1, 2.0),
        kernel_size: PositiveInt | None = None,
        padding: Literal["zero", "reflect"] = "zero",
        seed: Seed | None = None,
        **kwargs,
    ):
        super().__init__(seed=seed, **kwargs)
        self.p = p
        self.sigma = check_pair("sigma", sigma, positive=True)
        self.kernel_size = kernel_size
        if padding not in ("zero", "reflect"):
            raise ValueError(f"padding: expected one of zero, reflect, received {padding!r}")
        self.padding = padding

    def sample(self, batch, shape):
        radius = blur_radius(shape[1], self.kernel_size)
        if padding_too_large(radius, shape, self.padding):
            raise ValueError(
                f"{self.name}: reflect padding needs images larger than the kernel radius "
                f"{radius}, received shape {tuple(shape)}"
            )
        if radius <= 0:
            return None
        sigma = uniform(self.seed_generator, batch, self.sigma[0], self.sigma[1])
        return sigma, bernoulli(self.seed_generator, batch, self.p)

    def apply(self, images, params):
        if params is None:
            return images
        sigma, apply = params
        radius = blur_radius(images.shape[1], self.kernel_size)
        blurred = ops.clip(apply_blur(images, sigma, radius, self.padding), 0.0, 1.0)
        return ops.where(ops.reshape(apply, (-1, 1, 1, 1)), blurred, images)

    def get_config(self):
        config = super().get_config()
        config.update(
            p=self.p, sigma=list(self.sigma), kernel_size=self.kernel_size, padding=self.padding
        )
        return config


def padding_too_large(radius, shape, padding):
    return padding == "reflect" and radius >= min(shape[1], shape[2])


