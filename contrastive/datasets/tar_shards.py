"""Images in WebDataset-style tar shards: one sample per group of members
sharing a basename."""

import concurrent.futures
import glob
import os
import pathlib
import warnings
from typing import Literal

import numpy as np

from contrastive.datasets import cache
from contrastive.datasets.aspect import MAX_ASPECT, pad_to_canvas, resolve_stored_side
from contrastive.datasets.base import Arrays, Dataset, checked_labels
from contrastive.datasets.image_folder import class_labels
from contrastive.datasets.pil_decode import decode_bytes
from contrastive.datasets.shards import Shards, index_shard
from contrastive.errors import DataError
from contrastive.registry import register
from contrastive.typecheck import PathText, PositiveInt


@register("datasets", "tar_shards")
class TarShards(Dataset):
    """JPEG and PNG images in WebDataset-style `.tar` shards, labelled or not.

    A sample is the group of members sharing a name up to the first dot of
    its basename (`0001.jpg`, `0001.cls`): one image member (`.jpg`,
    `.jpeg`, `.png`) and, optionally, a label member (`.cls` or `.txt`
    holding an integer or a class name, or `.json` holding one, or an
    object with a `label` key). Integer labels are kept as they are; class
    names are sorted into class indices. A split's labels are all integers
    or all class names, the held-out split's of the same kind as the
    training split's. Images are converted to RGB and resized to `size` x
    `size` (bilinear) where they differ, or with `keep_aspect` kept at their
    aspect ratio (as `image_folder` keeps them).

    With `train.input: stream` the shards are read sequentially, never by
    random access: each epoch visits the shards in an order drawn from the
    seed and the epoch, through a shuffle buffer drawn alike, so a resumed
    run sees the same batches. A member that cannot be decoded is named
    (`shard.tar:member`), skipped and counted, and another sample takes its
    place. With `memory` or `device`, every sample is decoded once before
    training (and cached); unreadable members are reported as
    `image_folder` reports files. The shards' index (samples and labels) is
    read once and cached, so `steps_per_epoch` is known before training.
    A shard that is truncated (it ends before its end-of-archive marker) or
    damaged part-way is reported as unreadable members are, with the
    samples before the damage kept; so is a sample whose `.json` label
    holds no JSON.

    Example:

    ```python
    data = TarShards("shards/train-*.tar", size=32)
    data.count()  # samples in the shards
    ```

    Args:
        path: the training shards: a glob (`train-*.tar`), a folder of
            `.tar` files, or a list of either.
        size: the side of the images, in pixels.
        test_path: held-out shards of the same form (split `test`).
        labels: `auto` (labelled when every sample has a label member, else
            unlabelled when none has) or `none`.
        on_error: unreadable members and damaged shards found before
            training: `skip` them, or `fail`. Members found unreadable while
            streaming are always skipped.
        shuffle_buffer: samples held to shuffle the stream (`stream` only).
        cache: keep the index and the decoded images (see
            `contrastive.datasets.cache`), keyed by the shards' paths, sizes
            and times and these settings.
        keep_aspect: keep each image's aspect ratio instead of squashing it
            to a square, as `image_folder`'s `keep_aspect`: in memory
            (`memory`, `device`) each is stored with its shorter side
            `stored_side` (the longer side at most 3 times that) on a padded
            canvas with its own `(height, width)` (`Arrays.sizes`), and the
            random resized crop draws its box in the image's own geometry;
            `stream` crops each decoded member on its CPU workers.
            Evaluation takes the centred square of 0.875 of the shorter
            side, resized to `size`.
        stored_side: the shorter side of stored aspect-kept images;
            default `size / 0.875` (256 for 224).
    """

    def __init__(
        self,
        path: PathText | list[PathText],
        size: PositiveInt = 32,
        test_path: PathText | list[PathText] | None = None,
        labels: Literal["auto", "none"] = "auto",
        on_error: Literal["skip", "fail"] = "skip",
        shuffle_buffer: PositiveInt = 1000,
        cache: bool = True,
        keep_aspect: bool = False,
        stored_side: PositiveInt | None = None,
    ):
        self.keep_aspect = keep_aspect
        self.stored_side = resolve_stored_side(keep_aspect, stored_side, size)
        self.path = path
        self.size = size
        self.test_path = test_path
        self.labels = labels
        self.on_error = on_error
        self.shuffle_buffer = shuffle_buffer
        self.cache = cache
        self.splits = ("train", "test") if test_path else ("train",)
        self._indexes = {}

    def count(self, split="train"):
        return len(self.files(split))

    def files(self, split="train", check=True):
        """Returns the `Shards` of `split`, for streaming (`check` is unused:
        members are decoded only as training reads them)."""
        del check
        shards, samples, problems, damaged = self._indexed(split)
        self._report(problems, damaged)
        labels, classes = self._labels(split)
        return Shards(tuple(str(s) for s in shards),
                      tuple(tuple(sample[1] for sample in per_shard) for per_shard in samples),
                      labels, self.size, classes, skipped=(*damaged, *problems),
                      shuffle_buffer=self.shuffle_buffer, stored_side=self.stored_side)

    def classes(self, split="train"):
        """The class names of `split`, sorted (as `load` numbers them), from
        the index; None for integer labels or none."""
        return self._labels(split)[1] or None

    def load(self, split="train"):
        shards = self.files(split)
        key = None
        if self.cache:
            settings = {"size": self.size, "labels": self.labels, "tar_shards": 2}
            if self.keep_aspect:
                settings.update(stored_side=self.stored_side, max_aspect=MAX_ASPECT)
            key = cache.fingerprint(shards.shards, settings)
            hit = cache.load(key)
            if hit is not None and (hit[3] is not None) == self.keep_aspect:
                images, labels, classes, sizes = hit
                return Arrays(images, labels if shards.labels is not None else None, classes,
                              sizes=sizes, view_size=self.size if self.keep_aspect else None)
        from contrastive.evaluation.progress import Progress

        progress = Progress(f"decoding {len(shards)} samples from {len(shards.shards)} shard(s)",
                            len(shards), None, unit_name="image")
        items = [item for shard in range(len(shards.shards)) for item in shards.samples(shard)]
        with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
            decoded = pool.map(lambda item: decode_bytes(item[1], self.size, self.stored_side),
                               items)
            found, bad = {}, []
            for (index, _), (image, reason) in zip(items, decoded, strict=True):
                progress.add(1)
                if image is None:
                    bad.append(f"{shards.name(index)} ({reason})")
                else:
                    found[index] = image
        if bad:
            self._report(bad)
        if not found:
            raise DataError(f"{shards.shards[0]}: none of the {len(shards)} samples could be read")
        keep = np.array(sorted(found))
        labels = None if shards.labels is None else shards.labels[keep]
        skipped = tuple(shards.skipped) + tuple(bad)
        if self.keep_aspect:
            images, sizes = pad_to_canvas([found[i] for i in keep.tolist()])
            arrays = Arrays(images, labels, shards.class_names, skipped=skipped, sizes=sizes,
                            view_size=self.size)
        else:
            arrays = Arrays(np.stack([found[i] for i in keep.tolist()]), labels,
                            shards.class_names, skipped=skipped)
        if key is not None and not arrays.skipped:
            cache.store(key, arrays.images,
                        np.zeros(0, np.int32) if labels is None else labels, arrays.class_names,
                        arrays.sizes)
        return arrays

    def _indexed(self, split):
        """`(shards, *_index(shards))` of `split`, read once."""
        if split not in self._indexes:
            self.check_split(split)
            shards = shard_paths(self.test_path if split == "test" else self.path)
            self._indexes[split] = (shards, *self._index(shards))
        return self._indexes[split]

    def _index(self, shards):
        """Per shard, its samples `[key, image member, label, label member]`
        (`index_shard`); the problems found (groups without an image or with
        an unreadable label); and the damaged shards, each with its
        damage."""
        key = cache.fingerprint(shards, {"index": 2}) if self.cache else None
        hit = cache.load_list(key) if key else None
        if hit is not None and len(hit) == 3:
            return hit
        from contrastive.evaluation.progress import Progress

        progress = Progress(f"indexing {len(shards)} shard(s)", len(shards), None,
                            unit_name="shard")
        samples, problems, damaged = [], [], []
        for shard in shards:
            try:
                found, odd, damage = index_shard(shard)
            except OSError as exc:
                raise DataError(f"{shard}: cannot read the shard: {exc}") from None
            samples.append(found)
            problems.extend(odd)
            damaged.extend([damage] if damage else [])
            progress.add(1)
        if not any(samples):
            first = f" ({(damaged + problems)[0]})" if damaged or problems else ""
            raise DataError(f"{shards[0]}: no sample with a .jpg, .jpeg or .png member in "
                            f"{len(shards)} shard(s){first}")
        if key:
            cache.store_list(key, [samples, problems, damaged])
        return samples, problems, damaged

    def _labels(self, split):
        """`(labels, class_names)` of `split`: integers as they are, class
        names sorted into indices; `(None, ())` unlabelled.

        Raises:
            DataError: a label member on some samples only; integers and
                class names in one split; or held-out labels of another
                kind than the training split's.
        """
        shards, samples, _, _ = self._indexed(split)
        found = [(shard, sample[2], sample[3]) for shard, per_shard in zip(shards, samples)
                 for sample in per_shard]
        names = [label for _, label, _ in found]
        if self.labels == "none" or all(name is None for name in names):
            return None, ()
        if any(name is None or name == "" for name in names):
            raise DataError(f"{shards[0]}: expected a label member on every sample or on none")
        numbers = [_integer(name) for name in names]
        integers = sum(number is not None for number in numbers)
        if 0 < integers < len(names):
            # Name a label of the fewer kind: the likelier mistake.
            odd_name = integers >= len(names) - integers
            shard, label, member = next(item for item, number in zip(found, numbers, strict=True)
                                        if (number is None) == odd_name)
            expected, others = (("an integer label", integers) if odd_name
                                else ("a class name as label", len(names) - integers))
            raise DataError(f"{shard}:{member}: expected {expected}, as {others} other "
                            "sample(s) have (a split's labels are all integers or all class "
                            f"names), received {label!r}")
        if integers:
            labels, classes = checked_labels(numbers, shards[0]), ()
        else:
            labels, classes = class_labels(names, "folders", shards[0])
        if split == "test":
            self._check_held_out(classes, found[0])
        return labels, classes

    def _check_held_out(self, classes, first):
        """Held-out labels, named by `classes` (or integers), are of the
        training split's kind: `same_classes` can renumber class names as
        the training split's, but not integers as names, nor names as
        integers.

        Raises:
            DataError: naming `first`, `(shard, label, label member)` of the
                held-out split.
        """
        train_labels, train_classes = self._labels("train")
        if train_labels is None or bool(train_classes) == bool(classes):
            return
        shard, label, member = first
        expected = "an integer label, as the training shards have"
        if train_classes:
            shown = ", ".join(train_classes[:5]) + (", ..." if len(train_classes) > 5 else "")
            expected = f"a class name as label, as the training shards have ({shown})"
        raise DataError(f"{shard}:{member}: expected {expected}, received {label!r}")

    def _report(self, bad, damaged=()):
        """Refuses (`on_error: fail`), or warns of, the unreadable samples
        `bad` and the `damaged` shards (whose samples before the damage are
        kept)."""
        def listed(lines):
            more = f"; and {len(lines) - 10} more" if len(lines) > 10 else ""
            return "; ".join(lines[:10]) + more

        shards = f"{len(damaged)} damaged shard(s): {listed(damaged)}" if damaged else ""
        samples = f"{len(bad)} unreadable sample(s): {listed(bad)}" if bad else ""
        if self.on_error == "fail" and (shards or samples):
            raise DataError("; ".join(found for found in (shards, samples) if found))
        if shards:
            warnings.warn(f"skipped the rest of {shards}", stacklevel=3)
        if samples:
            warnings.warn(f"skipped {samples}", stacklevel=3)


def _integer(text):
    """`text` as an integer label, or None where it is a class name."""
    try:
        return int(text)
    except ValueError:
        return None


def shard_paths(path):
    """The `.tar` shards `path` names: a glob, a folder of `.tar` files, a
    file, or a list of those; sorted within each entry, duplicates dropped.

    Raises:
        DataError: an entry names no shard.
    """
    found = []
    for entry in [path] if isinstance(path, str) else list(path):
        where = pathlib.Path(entry)
        if where.is_dir():
            matches = sorted(where.glob("*.tar"))
        elif where.is_file():
            matches = [where]
        else:
            matches = sorted(pathlib.Path(p) for p in glob.glob(str(entry)))
        if not matches:
            where = "" if where.is_absolute() else f" (looked in {where.absolute()})"
            raise DataError(f"{entry}: expected .tar shards (a glob, a folder of .tar files or "
                            f"a file), found none{where}")
        found.extend(m for m in matches if m not in found)
    return found
