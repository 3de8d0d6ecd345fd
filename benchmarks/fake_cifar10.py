"""Writes made-up CIFAR-10-shaped archives, for `gpu.sh --dry-run`.

`DIR/cifar10-train.tar.gz` and `DIR/cifar10-test.tar.gz` hold
`train/<class>/NNNN.jpg` and `test/<class>/NNNN.jpg`: 32x32 JPEGs of a
colour of each class plus noise, laid out as the real archives are.

    python benchmarks/fake_cifar10.py /tmp/cifar10 --per-class 12
"""

import argparse
import io
import pathlib
import tarfile

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")


def write_archive(path, split, per_class, rng):
    with tarfile.open(path, "w:gz") as archive:
        for index, name in enumerate(CLASSES):
            colour = np.array([index * 25, 255 - index * 25, (index * 80) % 256], dtype=np.float64)
            for number in range(per_class):
                pixels = np.clip(colour + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
                info = tarfile.TarInfo(f"{split}/{name}/{number:04d}.jpg")
                info.size = buffer.tell()
                buffer.seek(0)
                archive.addfile(info, buffer)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--test-per-class", type=int, default=4)
    args = parser.parse_args(argv)
    folder = pathlib.Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    write_archive(folder / "cifar10-train.tar.gz", "train", args.per_class, rng)
    write_archive(folder / "cifar10-test.tar.gz", "test", args.test_per_class, rng)


if __name__ == "__main__":
    main()
