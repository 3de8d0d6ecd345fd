"""Augmenters: NumPy/PIL references for fixed parameters, statistics of the
random draws, input handling, and the pipeline inside a compiled fit."""

import colorsys
import os

import keras
import numpy as np
import pytest
from keras import ops
from PIL import Image
from scipy import ndimage

from contrastive import registry
from contrastive.augmenters import blur, color, crop, flip, solarize
from contrastive.augmenters.simclr import SimCLRAugment

NAMES = ("random_resized_crop", "random_flip", "color_jitter", "random_grayscale",
         "gaussian_blur", "solarize", "simclr")


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def rand_images(n, h, w, seed=0):
    return np.random.RandomState(seed).uniform(0.02, 0.98, (n, h, w, 3)).astype("float32")


# References for fixed parameters ----------------------------------------


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_crop_matches_pil_crop_and_resize(interpolation):
    images = rand_images(3, 16, 20)
    # Crops no larger than the output (always so at the default output size):
    # PIL then has no antialiasing, like tf.image.resize in the official code.
    boxes = np.array([[0, 2, 16, 16], [3, 5, 7, 9], [8, 1, 5, 12]], "int32")
    out = np_(crop.apply_crop(images, boxes, (16, 16), interpolation))
    method = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
    for i, (y0, x0, h, w) in enumerate(boxes):
        for c in range(3):
            pil = Image.fromarray(images[i, y0:y0 + h, x0:x0 + w, c], mode="F")
            ref = np.clip(np.asarray(pil.resize((16, 16), method[interpolation])), 0, 1)
            np.testing.assert_allclose(out[i, ..., c], ref, atol=2e-5)


def np_bilinear(img, out_h, out_w):
    """Half-pixel bilinear without antialiasing (tf.image.resize's rule)."""

    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    y0, y1, ty = axis(img.shape[0], out_h)
    x0, x1, tx = axis(img.shape[1], out_w)
    rows = img[y0] * (1 - ty)[:, None, None] + img[y1] * ty[:, None, None]
    return rows[:, x0] * (1 - tx)[None, :, None] + rows[:, x1] * tx[None, :, None]


def test_crop_downscale_matches_numpy_bilinear():
    images = rand_images(2, 16, 20)
    boxes = np.array([[0, 0, 16, 20], [2, 3, 13, 11]], "int32")
    out = np_(crop.apply_crop(images, boxes, (6, 7), "bilinear"))
    for i, (y0, x0, h, w) in enumerate(boxes):
        ref = np_bilinear(images[i, y0:y0 + h, x0:x0 + w], 6, 7)
        np.testing.assert_allclose(out[i], ref, atol=1e-5)


def test_crop_identity_box_returns_image():
    images = rand_images(2, 8, 8)
    boxes = np.array([[0, 0, 8, 8]] * 2, "int32")
    for interp in ("bilinear", "bicubic"):
        np.testing.assert_allclose(np_(crop.apply_crop(images, boxes, (8, 8), interp)), images, atol=1e-6)


def test_flip_reference():
    images = rand_images(3, 4, 5)
    out = np_(flip.apply_flip(images, np.array([True, False, True])))
    np.testing.assert_array_equal(out[0], images[0, :, ::-1])
    np.testing.assert_array_equal(out[1], images[1])
    np.testing.assert_array_equal(out[2], images[2, :, ::-1])


def np_saturation(img, f):
    out = np.empty_like(img)
    for idx in np.ndindex(img.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*img[idx])
        out[idx] = colorsys.hsv_to_rgb(h, min(max(s * f, 0.0), 1.0), v)
    return out


def np_hue(img, d):
    out = np.empty_like(img)
    for idx in np.ndindex(img.shape[:2]):
        h, s, v = colorsys.rgb_to_hsv(*img[idx])
        out[idx] = colorsys.hsv_to_rgb((h + d) % 1.0, s, v)
    return out


def np_op(img, op, value):
    if op == 0:
        return img * value
    if op == 1:
        m = img.mean(axis=(0, 1), keepdims=True)
        return (img - m) * value + m
    if op == 2:
        return np_saturation(img, value)
    return np_hue(img, value)


@pytest.mark.parametrize("op", [0, 1, 2, 3])
def test_each_jitter_op_matches_numpy(op):
    images = rand_images(3, 4, 4, seed=op)
    values = [np.array([0.3, 1.0, 1.7], "float32")] * 3 + [np.array([-0.2, 0.05, 0.45], "float32")]
    fn = [color.adjust_brightness, color.adjust_contrast, color.adjust_saturation,
          color.adjust_hue][op]
    out = np_(fn(images, values[op]))
    for i in range(3):
        np.testing.assert_allclose(out[i], np_op(images[i], op, values[op][i]), atol=1e-5)


def test_jitter_order_per_image_matches_sequential_numpy():
    images = rand_images(3, 4, 4, seed=7)
    factors = np.array([[1.6, 0.4, 1.5, 0.1], [0.5, 1.7, 0.2, -0.15], [1.2, 1.3, 0.0, 0.3]], "float32")
    order = np.array([[3, 0, 2, 1], [0, 1, 2, 3], [2, 1, 3, 0]], "int32")
    out = np_(color.apply_jitter(images, factors, order))
    for i in range(3):
        ref = images[i]
        for op in order[i]:
            ref = np.clip(np_op(ref, op, factors[i, op]), 0.0, 1.0)
        np.testing.assert_allclose(out[i], ref, atol=1e-5)


def test_grayscale_weights():
    images = rand_images(2, 3, 3)
    out = np_(color.to_grayscale(images))
    ref = images @ np.array([0.2989, 0.5870, 0.1140], "float32")
    for c in range(3):
        np.testing.assert_allclose(out[..., c], ref, atol=1e-6)


@pytest.mark.parametrize("padding,mode", [("zero", "constant"), ("reflect", "mirror")])
def test_blur_matches_scipy(padding, mode):
    images = rand_images(2, 12, 10)
    sigma = np.array([0.5, 1.7], "float32")
    radius = 3
    out = np_(blur.apply_blur(images, sigma, radius, padding))
    for i in range(2):
        x = np.arange(-radius, radius + 1)
        k = np.exp(-x ** 2 / (2 * sigma[i] ** 2))
        k /= k.sum()
        ref = ndimage.correlate1d(images[i], k, axis=0, mode=mode, cval=0.0)
        ref = ndimage.correlate1d(ref, k, axis=1, mode=mode, cval=0.0)
        np.testing.assert_allclose(out[i], ref, atol=1e-5)


def test_blur_kernel_size_follows_official_rule():
    assert blur.blur_radius(224) == 11  # kernel_size 22 -> 23 taps
    assert blur.blur_radius(32) == 1  # 3 taps
    assert blur.blur_radius(16) == 0  # no blur below 20 pixels
    k = np_(blur.gaussian_kernels(np.array([1.0], "float32"), 2))[0]
    ref = np.exp(-np.arange(-2, 3) ** 2 / 2.0)
    np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-6)


def test_solarize_reference():
    images = rand_images(2, 4, 4)
    out = np_(solarize.apply_solarize(images, 0.5, np.array([True, False])))
    np.testing.assert_allclose(out[0], np.where(images[0] < 0.5, images[0], 1 - images[0]))
    np.testing.assert_allclose(out[1], images[1])


# Statistics of the draws ---------------------------------------------------


def test_crop_box_statistics():
    seed = keras.random.SeedGenerator(3)
    boxes = np_(crop.sample_crop_boxes(seed, 4000, 224, 224)).astype(float)
    y0, x0, h, w = boxes.T
    assert (y0 >= 0).all() and (x0 >= 0).all()
    assert (y0 + h <= 224).all() and (x0 + w <= 224).all()
    area = h * w / 224 ** 2
    ratio = w / h
    assert area.min() < 0.09 and area.max() > 0.97
    assert area.min() > 0.079 and area.max() <= 1.0
    assert ratio.min() < 0.77 and ratio.max() > 1.30
    assert ratio.min() > 0.74 and ratio.max() < 1.35
    assert abs(np.mean(np.log(ratio))) < 0.02  # log-uniform: symmetric
    assert len({tuple(b) for b in boxes}) > 3900  # per image, not per batch
    again = np_(crop.sample_crop_boxes(seed, 4000, 224, 224))
    assert (again != boxes).any(axis=1).mean() > 0.99  # a second view differs


def test_jitter_order_is_a_random_permutation_per_image():
    factors, order = crop_free_jitter_draws()
    order = np_(order)
    assert (np.sort(order, axis=1) == np.arange(4)).all()
    assert len({tuple(r) for r in order}) == 24
    f = np_(factors)
    assert f[:, 0].min() < 0.25 and f[:, 0].max() > 1.75
    assert f[:, 3].min() < -0.19 and f[:, 3].max() > 0.19


def crop_free_jitter_draws():
    seed = keras.random.SeedGenerator(5)
    return color.sample_jitter(seed, 2000, color.jitter_ranges(1.0))


def changed(a, b):
    return np.abs(a - b).reshape(len(a), -1).max(axis=1) > 1e-4


def test_jitter_and_grayscale_fractions():
    n = 2000
    images = rand_images(n, 4, 4, seed=1)
    jit = np_(color.ColorJitter(seed=1)(images, training=True))
    frac = changed(jit, images).mean()
    assert abs(frac - 0.8) < 0.035, frac
    gray = np_(color.RandomGrayscale(seed=2)(images, training=True))
    is_gray = np.abs(gray[..., 0] - gray[..., 1]).reshape(n, -1).max(axis=1) < 1e-6
    assert abs(is_gray.mean() - 0.2) < 0.035, is_gray.mean()
    flipped = np_(flip.RandomFlip(seed=3)(images, training=True))
    assert abs(changed(flipped, images).mean() - 0.5) < 0.04
    blurred = np_(blur.RandomGaussianBlur(seed=4)(rand_images(600, 20, 20), training=True))
    assert abs(changed(blurred, rand_images(600, 20, 20)).mean() - 0.5) < 0.07


def test_views_differ_between_images_and_calls_and_seed_reproduces():
    one = rand_images(1, 24, 24)
    batch = np.repeat(one, 4, axis=0)
    aug = SimCLRAugment(preset="imagenet", seed=11)
    a, b = np_(aug(batch, training=True)), np_(aug(batch, training=True))
    assert len({a[i].tobytes() for i in range(4)}) == 4
    assert changed(a, b).all()
    again = SimCLRAugment(preset="imagenet", seed=11)
    np.testing.assert_array_equal(np_(again(batch, training=True)), a)
    other = np_(SimCLRAugment(preset="imagenet", seed=12)(batch, training=True))
    assert changed(a, other).all()


# Inputs, outputs, registry -------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registered_uint8_and_float_accepted(name):
    layer = registry.build("augmenters", {"name": name}, context={"seed": 0})
    uint8 = np.random.RandomState(0).randint(0, 256, (4, 24, 24, 3)).astype("uint8")
    a = np_(layer(uint8, training=True))
    assert a.dtype == np.float32 and a.shape == (4, 24, 24, 3)
    assert a.min() >= 0.0 and a.max() <= 1.0
    same = registry.build("augmenters", {"name": name}, context={"seed": 0})
    b = np_(same(uint8.astype("float32") / 255.0, training=True))
    np.testing.assert_allclose(a, b, atol=1e-5)
    plain = np_(layer(uint8, training=False))
    np.testing.assert_allclose(plain, uint8 / 255.0, atol=1e-6)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize(
    "images,match",
    [
        (np.zeros((8, 8, 3), "float32"), "rank 4"),
        (np.zeros((2, 8, 8, 4), "float32"), "3 channels"),
        (np.zeros((2, 8, 8, 3), "int32"), "uint8 images"),
    ],
)
def test_bad_inputs_are_clear_errors(images, match):
    with pytest.raises(ValueError, match=match):
        SimCLRAugment(seed=0)(images, training=True)


def test_presets_and_overrides():
    imagenet = SimCLRAugment(preset="imagenet")
    assert imagenet.settings["strength"] == 1.0 and imagenet.blur is not None
    cifar = SimCLRAugment(preset="cifar10")
    assert cifar.settings["strength"] == 0.5 and cifar.blur is None
    assert cifar.jitter.ranges == pytest.approx((0.4, 0.4, 0.4, 0.1))
    custom = SimCLRAugment(preset="cifar10", blur=True, strength=0.25, size=8,
                           grayscale_probability=0.0)
    assert custom.blur is not None and custom.jitter.ranges[3] == pytest.approx(0.05)
    assert custom.grayscale.p == 0.0
    out = custom(np.zeros((4, 24, 24, 3), "uint8"), training=True)
    assert tuple(out.shape) == (4, 8, 8, 3)


def test_spec_rejects_bad_arguments():
    from contrastive.errors import SpecError

    with pytest.raises(SpecError):
        registry.check("augmenters", {"name": "simclr", "preset": "mnist"})
    with pytest.raises(SpecError):
        registry.check("augmenters", {"name": "random_flip", "p": 1.5})


# Inside a compiled fit -------------------------------------------------------


class TwoViews(keras.Model):
    def __init__(self):
        super().__init__()
        self.augment = SimCLRAugment(preset="imagenet", seed=0)
        self.flat = keras.layers.Flatten()
        self.dense = keras.layers.Dense(1)

    def call(self, x, training=False):
        a = self.augment(x, training=training)
        b = self.augment(x, training=training)
        return self.dense(self.flat(a - b))


def test_pipeline_runs_in_compiled_fit():
    # torch.compile works here too (84 s on two CPU cores), so it runs only
    # with CONTRASTIVE_SLOW_TESTS=1; jax and tensorflow always compile (XLA).
    model = TwoViews()
    slow = os.environ.get("CONTRASTIVE_SLOW_TESTS") == "1"
    jit = keras.backend.backend() in ("jax", "tensorflow") or slow
    model.compile(optimizer="sgd", loss="mse", jit_compile=jit)
    x = np.random.RandomState(0).randint(0, 256, (8, 24, 24, 3)).astype("uint8")
    history = model.fit(x, np.zeros((8, 1), "float32"), batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    state = [np_(v) for v in model.augment.non_trainable_variables]
    assert any((s != 0).any() for s in state)


def _ks(a, b):
    """The two-sample Kolmogorov-Smirnov distance."""
    grid = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), grid, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), grid, side="right") / len(b)
    return np.abs(cdf_a - cdf_b).max()


@pytest.mark.parametrize("side", [(224, 224), (32, 32), (375, 500)])
def test_official_sampler_matches_tensorflows_op(side):
    tf = pytest.importorskip("tensorflow")
    height, width = side
    draws = 4096
    ours = np_(crop.sample_official_boxes(keras.random.SeedGenerator(7), draws, height, width))
    # Many more of TensorFlow's draws than ours, so that the distance
    # measures our 4,096 draws, not the reference's own noise.

    @tf.function
    def reference(seeds):
        def one(seed):
            begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
                [height, width, 3], bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
                seed=seed, min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
                area_range=(0.08, 1.0), max_attempts=100, use_image_if_no_bounding_boxes=True)
            return tf.concat([begin[:2], size[:2]], axis=0)

        return tf.map_fn(one, seeds, fn_output_signature=tf.int32)

    seeds = tf.stack([tf.range(16 * draws), tf.ones(16 * draws, tf.int32)], axis=1)
    theirs = reference(seeds).numpy()
    theirs = theirs.astype(float)
    ours = ours.astype(float)
    for boxes in (ours, theirs):
        y0, x0, h, w = boxes.T
        assert (y0 >= 0).all() and (x0 >= 0).all()
        assert (y0 + h <= height).all() and (x0 + w <= width).all()
    area = lambda b: b[:, 2] * b[:, 3] / (height * width)  # noqa: E731
    aspect = lambda b: b[:, 3] / b[:, 2]  # noqa: E731
    assert _ks(area(ours), area(theirs)) < 0.03
    assert _ks(aspect(ours), aspect(theirs)) < 0.03
    # The offset: uniform in [0, side - box side), as the TF kernel draws it.
    room = height - ours[:, 2]
    assert (ours[room > 0, 0] < room[room > 0]).all()
    assert abs(np.mean(area(ours)) - np.mean(area(theirs))) < 0.02  # 3.5 standard errors
    if height == width:
        assert abs(np.mean(area(ours)) - 0.425) < 0.02  # not torchvision's 0.49


# Several replicas ------------------------------------------------------------


def _replica_views(images, replicas, index, sizes=None):
    """Two views of `images` by a fresh seeded augmenter that sees itself as
    replica `index` of `replicas` (None: a single device)."""
    from contrastive.augmenters._base import connect_replicas

    augment = SimCLRAugment(preset="imagenet", size=12, seed=5)
    if replicas is not None:
        connect_replicas(augment, lambda: (replicas, index))
    kwargs = {} if sizes is None else {"sizes": sizes}
    return np.concatenate([np_(augment(images, training=True, **kwargs)) for _ in range(2)])


@pytest.mark.parametrize("sized", [False, True], ids=["square", "aspect-kept"])
@pytest.mark.parametrize("tensor_index", [False, True], ids=["int", "tensor"])
def test_replicas_draw_their_rows_of_one_global_draw(sized, tensor_index):
    images = (rand_images(8, 24, 24, seed=2) * 255).astype("uint8")
    sizes = np.array([[24, 24], [20, 24], [24, 16], [18, 18]] * 2, "int32") if sized else None
    whole = _replica_views(images, None, 0, sizes)
    parts = []
    for index in range(2):
        rows = slice(4 * index, 4 * index + 4)
        i = ops.convert_to_tensor(index) if tensor_index else index
        parts.append(_replica_views(images[rows], 2, i, None if sizes is None else sizes[rows]))
    # The two calls' outputs stack as (view 1 of 4 rows, view 2 of 4 rows).
    joined = np.concatenate([np.concatenate([p[:4] for p in parts]),
                             np.concatenate([p[4:] for p in parts])])
    np.testing.assert_allclose(joined, whole, atol=1e-5)


def test_replicas_do_not_repeat_each_others_draws():
    images = (rand_images(4, 24, 24, seed=3) * 255).astype("uint8")
    first = _replica_views(images, 2, 0)
    second = _replica_views(images, 2, 1)
    differs = np.abs(first - second).reshape(len(first), -1).max(axis=1) > 1e-3
    assert differs.all(), "replicas with the same images drew the same views"
