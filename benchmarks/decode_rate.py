"""Decoded images per second per CPU core for ImageNet-like JPEGs, and the
cores needed to feed a GPU at a given rate: `benchmarks/inputs.py --decode`.

The JPEGs are made in a temporary folder from CIFAR-10 images (the first
`count` of a local `cifar10-train.tar.gz`), upscaled (bicubic) to each size
with Gaussian noise (sigma 6) added so that their files are about as large
as photographs' (ImageNet's average about 110 KB), or from synthetic smooth
fields with the same noise when no CIFAR copy is given. Three tf.data
pipelines, each ending in a uint8 224 x 224 image:

- `stream`: `contrastive.datasets.decode.decode(path, 224)`, what
  `train.input: stream` runs on the CPU (whole decode, resize);
- `crop`: whole decode, then a random resized crop (area 8-100%, aspect
  3/4-4/3, `tf.image.sample_distorted_bounding_box`) resized to 224, as
  ImageNet input pipelines do on the CPU;
- `fused`: the same crop decoded alone (`tf.image.decode_and_crop_jpeg`), as
  the official SimCLR input pipeline does.

Each runs with 1 and 2 tf.data workers (a private pool of that many
threads, one intra-op thread), for `seconds` after one warm-up batch.
"""

import io
import os
import pathlib
import tarfile
import tempfile
import time

import numpy as np

SIZES = ((500, 375), (224, 224), (1024, 768))
PIPELINES = ("stream", "crop", "fused")
# One A100 80GB, ResNet-50 v1.5, mixed precision, PyTorch (NVIDIA
# DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md,
# "Training performance: NVIDIA DGX A100 (8x A100 80GB)", 1 GPU).
RESNET50_A100_RATE = 2470


def sources(data, count, seed=0):
    """`count` uint8 RGB source images: CIFAR-10's first from `data` (a
    folder holding `cifar10-train.tar.gz`), else synthetic smooth fields."""
    from PIL import Image

    archive = pathlib.Path(data or "") / "cifar10-train.tar.gz"
    if data and archive.is_file():
        images = []
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith(".jpg"):
                    with Image.open(io.BytesIO(tar.extractfile(member).read())) as image:
                        images.append(np.asarray(image.convert("RGB")))
                    if len(images) == count:
                        break
        return images, f"CIFAR-10 ({archive})"
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (count, 6, 8, 3), dtype=np.uint8)
    return list(coarse), "synthetic smooth fields"


def write_jpegs(folder, images, size, seed=0):
    """Writes each image upscaled to `size` (width, height) with noise, as
    JPEG quality 90; returns the paths and the mean file size in KB."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, pixels in enumerate(images):
        big = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC),
                         np.float32)
        big = np.clip(big + rng.normal(0, 6, big.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(big).save(path, quality=90)
        paths.append(str(path))
    return paths, float(np.mean([os.path.getsize(p) for p in paths]) / 1024)


def pipeline(name, side=224):
    """The map function of pipeline `name`: a path to uint8 `(side, side, 3)`."""
    import tensorflow as tf

    from contrastive.datasets.decode import decode

    def box(shape, seed):
        begin, extent, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape, tf.zeros((1, 0, 4)), seed=seed, min_object_covered=0.1,
            aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=100,
            use_image_if_no_bounding_boxes=True)
        return begin, extent

    def finish(image):
        image = tf.image.resize(image, (side, side), method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    def stream(path, seed):
        del seed
        return decode(path, side)

    def crop(path, seed):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        begin, extent = box(tf.shape(image), seed)
        return finish(tf.slice(image, begin, extent))

    def fused(path, seed):
        contents = tf.io.read_file(path)
        begin, extent = box(tf.image.extract_jpeg_shape(contents), seed)
        window = tf.stack([begin[0], begin[1], extent[0], extent[1]])
        return finish(tf.image.decode_and_crop_jpeg(contents, window, channels=3))

    return {"stream": stream, "crop": crop, "fused": fused}[name]


def rate(paths, name, workers, seconds, batch=32):
    """Images per second of pipeline `name` on `workers` threads."""
    import tensorflow as tf

    seeds = tf.data.Dataset.range(1 << 30).map(lambda i: tf.stack([i, i * 7 + 1]))
    dataset = (
        tf.data.Dataset.zip(tf.data.Dataset.from_tensor_slices(paths).repeat(), seeds)
        .map(pipeline(name), num_parallel_calls=workers, deterministic=False)
        .batch(batch)
    )
    options = tf.data.Options()
    options.threading.private_threadpool_size = workers
    options.threading.max_intra_op_parallelism = 1
    options.autotune.enabled = False
    iterator = iter(dataset.with_options(options))
    next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += int(next(iterator).shape[0])
    return count / (time.perf_counter() - start)


def measure(data, count, seconds, gpu_rate, workers=(1, 2)):
    """The rates of every size, pipeline and worker count, and the cores
    each needs to feed `gpu_rate` images/s; a JSON-ready dict."""
    images, origin = sources(data, count)
    rows = []
    with tempfile.TemporaryDirectory(prefix="decode-rate-") as tmp:
        for width, height in SIZES:
            paths, kb = write_jpegs(pathlib.Path(tmp) / f"{width}x{height}", images,
                                    (width, height))
            for name in PIPELINES:
                for n in workers:
                    per_second = rate(paths, name, n, seconds)
                    per_core = per_second / n
                    rows.append({"size": f"{width}x{height}", "file_kb": round(kb, 1),
                                 "pipeline": name, "workers": n,
                                 "images_per_second": round(per_second, 1),
                                 "per_core": round(per_core, 1),
                                 "cores_for_gpu": round(gpu_rate / per_core, 1)})
    return {"source": origin, "images": len(images), "gpu_rate": gpu_rate, "rows": rows}


def table(result):
    """The rows as a Markdown table."""
    lines = [("| JPEG size | mean file | pipeline | workers | images/s | per core | "
              f"cores for {result['gpu_rate']:,} images/s |"),
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in result["rows"]:
        lines.append(f"| {row['size']} | {row['file_kb']} KB | {row['pipeline']} | "
                     f"{row['workers']} | {row['images_per_second']:,} | {row['per_core']:,} | "
                     f"{row['cores_for_gpu']} |")
    return "\n".join(lines)
