"""Images kept at their aspect ratio (`keep_aspect`): the random resized crop
draws its box in each image's own geometry and resizes only the crop, in
every input mode; nothing is squashed to a square.

Reference: PIL's crop-and-resize of the ORIGINAL file. The pipeline stores
each image smaller (memory, device) or crops the original (stream), so the
images are smooth and the tolerance is a mean absolute difference below
`MEAN_TOLERANCE` levels of 255 (and a worst pixel below `MAX_TOLERANCE`).
"""

import numpy as np
import pytest
from keras import ops
from PIL import Image

import contrastive
from contrastive.augmenters.crop import NUMPY_OPS, RandomResizedCrop, centre_boxes
from contrastive.augmenters.simclr import SimCLRAugment
from contrastive.datasets.aspect import stored_shape
from contrastive.datasets.image_folder import ImageFolder
from contrastive.methods.simclr import SimCLR
from contrastive.training.inputs import DeviceInput, MemoryInput, StreamInput

SIZE = 32
STORED = 64
# PIL (width, height): landscape 4:3, portrait 1:3, square.
SHAPES = {"a_landscape.png": (500, 375), "b_portrait.png": (200, 600), "c_square.png": (300, 300)}
# The known box, as fractions of each image: [top, left, height, width].
BOX = (0.2, 0.3, 0.5, 0.4)
MEAN_TOLERANCE = 1.0
MAX_TOLERANCE = 6.0


def smooth_image(width, height, phase):
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width, y / height
    image = np.stack([
        127.5 + 100 * np.sin(2 * np.pi * (1.3 * u + 0.4 * v) + phase),
        127.5 + 100 * np.cos(2 * np.pi * (0.6 * u - 1.1 * v) + 2 * phase),
        255 * (0.25 + 0.5 * u * v),
    ], axis=-1)
    return Image.fromarray(np.round(image).astype(np.uint8))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "aspect"
    root.mkdir()
    for phase, (name, (width, height)) in enumerate(SHAPES.items()):
        smooth_image(width, height, phase).save(root / name)
    return root


def originals(folder):
    return [Image.open(folder / name).convert("RGB") for name in sorted(SHAPES)]


def augmenter():
    """The SimCLR augmentation with every stage but the crop off."""
    return SimCLRAugment(preset="cifar10", size=SIZE, flip_probability=0.0,
                         jitter_probability=0.0, grayscale_probability=0.0, blur=False,
                         seed=1)


def fraction_boxes(heights, widths, xp=np):
    """`BOX` in each image's own coordinates, `(B, 4)` `[y0, x0, h, w]`."""
    heights = xp.cast(heights, "float32") if xp is ops else np.asarray(heights, np.float32)
    widths = xp.cast(widths, "float32") if xp is ops else np.asarray(widths, np.float32)
    top, left, high, wide = BOX
    boxes = [xp.round(top * heights), xp.round(left * widths),
             xp.round(high * heights), xp.round(wide * widths)]
    stacked = xp.stack(boxes, axis=1)
    return xp.cast(stacked, "int32") if xp is ops else stacked.astype(np.int32)


def reference(original, box, scale_y=1.0, scale_x=1.0):
    """PIL's bicubic crop-and-resize of `original` to SIZE x SIZE, `box`
    `[y0, x0, h, w]` given in coordinates `scale` times the original's."""
    y0, x0, h, w = (float(v) for v in box)
    pil_box = (x0 / scale_x, y0 / scale_y, (x0 + w) / scale_x, (y0 + h) / scale_y)
    crop = original.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=pil_box)
    return np.asarray(crop, np.float64)


def assert_close(views, expected, what):
    diff = np.abs(np.asarray(views, np.float64) - expected)
    assert diff.mean() < MEAN_TOLERANCE, f"{what}: mean abs diff {diff.mean():.2f}"
    assert diff.max() < MAX_TOLERANCE, f"{what}: max abs diff {diff.max():.2f}"


def known_boxes(monkeypatch):
    """Makes the crop draw `BOX` of each image instead of a random box."""
    def sample(self, batch, shape, sizes=None):
        assert sizes is not None, "the crop got no per-image sizes"
        sizes = ops.convert_to_tensor(sizes)
        return fraction_boxes(sizes[:, 0], sizes[:, 1], xp=ops)

    monkeypatch.setattr(RandomResizedCrop, "sample", sample)


def model_views(x, input_layer=None):
    model = SimCLR(encoder=None, head=None, augmenter=augmenter(), input_layer=input_layer)
    first, second = model.two_views(model.images(x))
    return [np.asarray(ops.convert_to_numpy(view)) * 255 for view in (first, second)]


def test_aspect_kept_storage_never_squashes(folder):
    data = ImageFolder(str(folder), size=SIZE, keep_aspect=True, stored_side=STORED,
                       cache=False).load()
    assert data.sizes.tolist() == [list(stored_shape(h, w, STORED))
                                   for w, h in (SHAPES[n] for n in sorted(SHAPES))]
    for (height, width), name in zip(data.sizes, sorted(SHAPES)):
        original_w, original_h = SHAPES[name]
        assert min(height, width) <= STORED
        assert abs(width / height - original_w / original_h) <= 1.0 / min(height, width)
    for image, (height, width) in zip(data.images, data.sizes):
        assert not image[height:].any() and not image[:, width:].any()  # zero padding
    assert data.image_shape == (SIZE, SIZE, 3)
    # TensorFlow's decoding (what stream runs evaluate on) stores the same shapes.
    pytest.importorskip("tensorflow")
    files = ImageFolder(str(folder), size=SIZE, keep_aspect=True, stored_side=STORED,
                        cache=False).files()
    assert files.in_memory().sizes.tolist() == data.sizes.tolist()


def test_the_default_still_squashes_to_size(folder):
    data = ImageFolder(str(folder), size=SIZE, cache=False).load()
    assert data.sizes is None and data.images.shape == (3, SIZE, SIZE, 3)


@pytest.mark.parametrize("mode", ["memory", "device"])
def test_a_known_box_crops_the_original(folder, monkeypatch, mode):
    data = ImageFolder(str(folder), size=SIZE, keep_aspect=True, stored_side=STORED,
                       cache=False).load()
    known_boxes(monkeypatch)
    source = (MemoryInput if mode == "memory" else DeviceInput)(data, 3, seed=0)
    x = source.fit_arguments(0, 1)["x"][0][0]
    views = model_views(x, source.input_layer())
    boxes = fraction_boxes(data.sizes[:, 0], data.sizes[:, 1])
    for i, original in enumerate(originals(folder)):
        height, width = data.sizes[i]
        expected = reference(original, boxes[i], height / original.height,
                             width / original.width)
        for view in views:
            assert_close(view[i], expected, f"{mode}, image {i}")


def test_stream_crops_the_decoded_original(folder, monkeypatch):
    pytest.importorskip("tensorflow")
    files = ImageFolder(str(folder), size=SIZE, keep_aspect=True, cache=False).files()
    monkeypatch.setattr(StreamInput, "boxes", lambda self, epoch, index, height, width:
                        np.repeat(fraction_boxes([height], [width]), 2, axis=0))
    source = StreamInput(files, 3, seed=0, augmenter=augmenter())
    (x,) = next(iter(source.dataset(0, 1)))
    x = {key: value.numpy() for key, value in x.items()}
    assert x["views"].shape == (3, 2, SIZE, SIZE, 3)
    views = model_views(x)
    for i, original in enumerate(originals(folder)):
        expected = reference(original, fraction_boxes([original.height], [original.width])[0])
        for view in views:
            assert_close(view[i], expected, f"stream, image {i}")


def test_stream_crops_are_drawn_from_seed_epoch_and_index(folder):
    pytest.importorskip("tensorflow")
    files = ImageFolder(str(folder), size=SIZE, keep_aspect=True, cache=False).files()
    source = StreamInput(files, 3, seed=0, augmenter=augmenter())
    boxes = source.boxes(0, 1, 600, 200)
    assert boxes.shape == (2, 4) and np.array_equal(boxes, source.boxes(0, 1, 600, 200))
    assert not np.array_equal(boxes, source.boxes(1, 1, 600, 200))
    y0, x0, h, w = boxes.T
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y0 + h <= 600).all() and (x0 + w <= 200).all()


def test_random_boxes_fall_inside_each_image(folder):
    data = ImageFolder(str(folder), size=SIZE, keep_aspect=True, stored_side=STORED,
                       cache=False).load()
    for sampler in ("official", "torchvision"):
        crop = RandomResizedCrop(SIZE, SIZE, sampler=sampler, seed=3)
        sizes = np.repeat(data.sizes, 200, axis=0)
        boxes = np.asarray(ops.convert_to_numpy(
            crop.sample(len(sizes), (len(sizes), *data.images.shape[1:]), sizes)))
        y0, x0, h, w = boxes.T
        assert (y0 >= 0).all() and (x0 >= 0).all() and (h >= 1).all() and (w >= 1).all()
        assert (y0 + h <= sizes[:, 0]).all() and (x0 + w <= sizes[:, 1]).all(), sampler
        # Boxes use the whole image: in the portrait one, some reach below
        # the top square.
        portrait = sizes[:, 0] > sizes[:, 1]
        assert (y0 + h > sizes[:, 1])[portrait].any(), sampler


def test_evaluation_takes_the_centred_view_of_the_original(folder):
    # The default stored side (size / 0.875): the centred view (0.875 of the
    # shorter side) is `size` unresized, as torchvision's Resize + CenterCrop.
    data = ImageFolder(str(folder), size=SIZE, keep_aspect=True, cache=False).load()
    assert data.sizes.min() == round(SIZE / 0.875)
    views = np.concatenate(list(data.batches(2)))
    assert views.shape == (3, SIZE, SIZE, 3)
    boxes = np.asarray(centre_boxes(NUMPY_OPS, data.sizes[:, 0], data.sizes[:, 1]))
    assert (boxes[:, 2:] == SIZE).all()
    for i, original in enumerate(originals(folder)):
        height, width = data.sizes[i]
        expected = reference(original, boxes[i], height / original.height,
                             width / original.width)
        assert_close(views[i], expected, f"evaluation view {i}")
    pytest.importorskip("tensorflow")
    files = ImageFolder(str(folder), size=SIZE, keep_aspect=True, cache=False).files()
    streamed = np.concatenate(list(files.batches(2)))
    assert np.abs(streamed.astype(float) - views).mean() < 1.0


# (memory and stream train, and are evaluated, in the labelled test below)
def test_an_aspect_kept_folder_trains_in_device_mode(folder, tmp_path):
    spec = {
        "data": {"name": "image_folder", "path": str(folder), "size": 16, "cache": False,
                 "keep_aspect": True},
        "augment": {"name": "simclr", "preset": "cifar10", "size": 16},
        "encoder": {"name": "small_cnn", "widths": [4]},
        "head": {"name": "mlp", "output_dim": 4},
        "train": {"batch_size": 3, "epochs": 1, "verbose": 0, "input": "device"},
        "output": {"tensorboard": False, "plot": False},
    }
    run = contrastive.train(spec, out=tmp_path / "run", log=lambda line: None)
    assert run.results["epochs"] == 1


@pytest.mark.parametrize("mode", ["memory", "stream"])
def test_an_aspect_kept_labelled_folder_is_evaluated_on_centred_views(tmp_path, mode):
    if mode == "stream":
        pytest.importorskip("tensorflow")
    root = tmp_path / "classes"
    for label in ("x", "y"):
        (root / label).mkdir(parents=True)
        for phase, (name, (width, height)) in enumerate(SHAPES.items()):
            smooth_image(width, height, phase + 3 * (label == "y")).save(root / label / name)
    spec = {
        "data": {"name": "image_folder", "path": str(root), "test_path": str(root), "size": 16,
                 "cache": False, "keep_aspect": True},
        "augment": {"name": "simclr", "preset": "cifar10", "size": 16},
        "encoder": {"name": "small_cnn", "widths": [4]},
        "head": {"name": "mlp", "output_dim": 4},
        "train": {"batch_size": 3, "epochs": 1, "verbose": 0, "input": mode},
        "eval": {"knn": {"k": 1}},
        "output": {"tensorboard": False, "plot": False},
    }
    run = contrastive.train(spec, out=tmp_path / "run", log=lambda line: None)
    # Evaluated on the centred views (size x size), whatever the accuracy of
    # a one-epoch encoder four channels wide.
    assert 0.0 <= run.results["eval"]["knn_accuracy"] <= 1.0


@pytest.mark.parametrize(("augment", "key"), [
    (None, "augment"),
    ({"name": "random_flip"}, "augment"),
    ({"name": "simclr", "preset": "cifar10"}, "augment.size"),
])
def test_aspect_kept_data_needs_an_augmenter_that_crops(folder, tmp_path, augment, key):
    from contrastive.errors import SpecError

    spec = {
        "data": {"name": "image_folder", "path": str(folder), "size": 16, "cache": False,
                 "keep_aspect": True},
        "augment": augment,
        "encoder": {"name": "small_cnn", "widths": [4]},
        "head": {"name": "mlp", "output_dim": 4},
        "train": {"batch_size": 3, "epochs": 1, "verbose": 0, "input": "memory"},
        "output": {"tensorboard": False, "plot": False},
    }
    with pytest.raises(SpecError, match="aspect ratio") as error:
        contrastive.train(spec, out=tmp_path / "run", log=lambda line: None)
    assert error.value.path == key


def test_preview_shows_crops_of_aspect_kept_images(folder, tmp_path, write_spec):
    from click.testing import CliRunner
    from contrastive_cli.main import app

    spec = write_spec({
        "data": {"name": "image_folder", "path": str(folder), "size": 16, "cache": False,
                 "keep_aspect": True},
        "encoder": {"name": "small_cnn"},
        "augment": {"name": "simclr", "preset": "cifar10", "size": 16},
    })
    out = tmp_path / "views.png"
    result = CliRunner().invoke(app, ["preview", str(spec), "--out", str(out), "--n", "3"])
    assert result.exit_code == 0, result.output
    # 3 rows of 16-pixel cells shown 4x: the centred view and two crops.
    assert np.asarray(Image.open(out)).shape == (3 * 66 + 2, 3 * 66 + 2, 3)


def test_streamed_crops_resume_exactly(folder):
    pytest.importorskip("tensorflow")
    files = ImageFolder(str(folder), size=SIZE, keep_aspect=True, cache=False).files()
    source = StreamInput(files, 3, seed=0, augmenter=augmenter())
    whole = [batch[0]["views"].numpy() for batch in source.dataset(0, 2)]
    resumed = [batch[0]["views"].numpy() for batch in source.dataset(1, 2)]
    assert len(whole) == 2 and not np.array_equal(whole[0], whole[1])
    assert np.array_equal(whole[1], resumed[0])


def test_aspect_kept_images_are_cached_with_their_sizes(folder):
    fresh = ImageFolder(str(folder), size=SIZE, keep_aspect=True, stored_side=STORED).load()
    cached = ImageFolder(str(folder), size=SIZE, keep_aspect=True, stored_side=STORED).load()
    assert np.array_equal(cached.sizes, fresh.sizes) and cached.view_size == SIZE
    assert np.array_equal(cached.images, fresh.images)
    squashed = ImageFolder(str(folder), size=SIZE).load()
    assert squashed.sizes is None and squashed.images.shape == (3, SIZE, SIZE, 3)


def test_a_stored_side_needs_keep_aspect(folder):
    with pytest.raises(ValueError, match="expected keep_aspect: true"):
        ImageFolder(str(folder), size=SIZE, stored_side=STORED)


def test_a_crop_of_a_canvas_needs_an_output_size():
    canvas = np.zeros((2, 8, 12, 3), np.uint8)
    sizes = np.array([[8, 6], [5, 12]], np.int32)
    with pytest.raises(ValueError, match="expected height and width"):
        RandomResizedCrop()(canvas, training=True, sizes=sizes)
    views = RandomResizedCrop(4, 4, seed=0)(canvas, training=False, sizes=sizes)
    assert tuple(views.shape) == (2, 4, 4, 3)
