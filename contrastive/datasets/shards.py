"""Samples in WebDataset-style tar shards, read sequentially: the index of
the shards' samples, and `Shards`, the split that streams them."""

import bz2
import concurrent.futures
import dataclasses
import gzip
import lzma
import os
import re
import tarfile
import warnings
import zlib

import numpy as np

from contrastive.datasets.aspect import centre_views, pad_to_canvas
from contrastive.datasets.pil_decode import decode_bytes

IMAGE_SUFFIXES = ("jpg", "jpeg", "png")
LABEL_SUFFIXES = ("cls", "txt", "json")

# WebDataset's grouping: a member `dir/key.suffix.more` belongs to sample
# `dir/key` (the basename up to its first dot), with suffix `suffix.more`.
_MEMBER = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")


def split_member(name):
    """`(key, suffix)` of a member name, suffix lower-cased; None for a name
    with no suffix."""
    match = _MEMBER.match(name)
    return None if match is None else (match.group(1), match.group(2).lower())


class DamagedShard(Exception):
    """A shard that stops being readable part-way: truncated (it ends before
    its end-of-archive marker, or a member's data or the compressed stream
    before theirs) or damaged (a header or compressed data that is not
    valid). The message says where, what was expected and what was
    received."""


class _ShortHeader(Exception):
    """The file ends where a header is due, or inside one."""


class _InvalidHeader(Exception):
    """A block where a header is due that is neither a header nor zeros."""


class _StrictHeader(tarfile.TarInfo):
    """A member's header, read strictly: `tarfile` takes a header cut short,
    missing or invalid after the first member for the end of the archive,
    so a damaged shard would read as a shorter one."""

    @classmethod
    def frombuf(cls, buf, encoding, errors):
        # The file ending where a header is due ends the archive, as tar and
        # `tarfile` take it (a writer that leaves out the end-of-archive
        # marker); ending inside a header does not.
        if not buf:
            raise tarfile.EmptyHeaderError("empty header")
        if len(buf) < tarfile.BLOCKSIZE:
            raise _ShortHeader()
        try:
            return super().frombuf(buf, encoding, errors)
        except tarfile.HeaderError as exc:
            if buf.count(0) == tarfile.BLOCKSIZE:
                raise  # a zero block: the end-of-archive marker
            raise _InvalidHeader(str(exc)) from None


class _Stepwise:
    """A decompressing reader whose `read` returns what one step
    decompresses (`read1`): where the stream is cut short, the data before
    the cut is read before the EOFError, which `read` would drop with the
    buffer it was filling."""

    def __init__(self, reader):
        self.read = reader.read1


def _decompressed(raw):
    """`raw`, a shard opened in binary, decompressed where it is gzip, bzip2
    or xz (recognised as `tarfile` does), else None. These readers raise
    EOFError where the stream ends early; `tarfile`'s own take that for the
    end of the archive."""
    head = raw.peek(10)[:10]
    if head.startswith(b"\x1f\x8b\x08"):
        return _Stepwise(gzip.GzipFile(fileobj=raw))
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return _Stepwise(bz2.BZ2File(raw))
    if head.startswith((b"\x5d\x00\x00\x80", b"\xfd7zXZ")):
        return _Stepwise(lzma.LZMAFile(raw))
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        try:
            from compression import zstd  # Python 3.14 and later
        except ImportError:
            return None  # `tarfile` cannot read it either: said as damaged at its start
        return _Stepwise(zstd.ZstdFile(raw))
    return None


def read_members(shard):
    """Yields `(member name, bytes)` of the files of a tar shard, in archive
    order, reading it once from start to end (no seeking).

    Raises:
        OSError: the shard cannot be opened.
        DamagedShard: the shard is truncated or damaged after the members
            yielded.
    """
    with open(shard, "rb") as raw:
        stream = _decompressed(raw)
        where, rest = "at its start", "the rest of the archive"
        try:
            with tarfile.open(fileobj=stream or raw, mode="r|",
                              tarinfo=_StrictHeader) as archive:
                for member in archive:
                    if member.isfile():
                        where, rest = f"in {member.name}", f"its {member.size} bytes"
                        data = archive.extractfile(member).read()
                        yield member.name, data
                    where, rest = f"after {member.name}", "the rest of the archive"
            # The compressed stream's end (its checksum) lies past the archive's.
            where, rest = "after the end-of-archive marker", "the end of the compressed stream"
            while stream is not None and stream.read(1 << 16):
                pass
        except _ShortHeader:
            problem = ("truncated", "a member or the end-of-archive marker",
                       "the end of the file")
        except _InvalidHeader as exc:
            problem = ("damaged", "a member or the end-of-archive marker",
                       f"a block that is no header ({exc})")
        except (tarfile.ReadError, EOFError):
            problem = ("truncated", rest, "the end of the file")
        except (tarfile.TarError, OSError, zlib.error, lzma.LZMAError) as exc:
            problem = ("damaged", rest, str(exc))
        else:
            return
    kind, expected, received = problem
    raise DamagedShard(f"{kind} {where}: expected {expected}, received {received}")


def index_shard(shard):
    """The samples of one shard, in archive order: `[key, image member,
    label text or None, label member or None]` for each group of members
    that holds an image (and no unreadable label).

    Returns:
        `(samples, problems, damage)`: problems name groups with no image
        or an unreadable label member; damage is None, or the shard named
        with what `read_members` found wrong part-way: the samples before it
        are kept, but for the last one read where it lacks a kind of member
        the one before it has (the damage cut it short).

    Raises:
        OSError: the shard cannot be opened.
    """
    groups, damage = {}, None
    try:
        for name, data in read_members(shard):
            parts = split_member(name)
            if parts is None:
                continue
            key, suffix = parts
            group = groups.setdefault(key, {})
            if suffix in IMAGE_SUFFIXES and "image" not in group:
                group["image"] = name
            elif suffix in LABEL_SUFFIXES and "label" not in group:
                try:
                    group["label"] = [label_text(data, suffix), name]
                except ValueError as exc:
                    group["label"] = None
                    group["unreadable"] = f"{shard}:{name} ({exc})"
    except DamagedShard as exc:
        damage = f"{shard} ({exc})"
        keys = list(groups)
        if len(keys) > 1 and set(groups[keys[-1]]) < set(groups[keys[-2]]):
            del groups[keys[-1]]
    samples, problems = [], []
    for key, group in groups.items():
        if "image" not in group:
            problems.append(f"{shard}:{key} (no .jpg, .jpeg or .png member)")
        elif "unreadable" in group:
            problems.append(group["unreadable"])
        else:
            samples.append([key, group["image"], *(group.get("label") or [None, None])])
    return samples, problems, damage


def label_text(data, suffix):
    """The label a `.cls`, `.txt` or `.json` member holds, as text: an
    integer or a class name (`.json`: a number, a string, or an object's
    `label` or `cls`).

    Raises:
        ValueError: a `.json` member that holds no JSON.
    """
    text = data.decode("utf-8", errors="replace").strip()
    if suffix != "json":
        return text
    import json

    try:
        value = json.loads(text)
    except ValueError:
        shown = text if len(text) <= 40 else f"{text[:40]}..."
        raise ValueError(f"expected a JSON label, received {shown!r}") from None
    if isinstance(value, dict):
        value = value.get("label", value.get("cls", ""))
    return str(value).strip()


@dataclasses.dataclass
class Shards:
    """A split of tar shards, read sequentially as it is needed: the
    counterpart of `Files` for `tar_shards`.

    Sample `i` is the `i`-th of the index: the shards in their given order,
    each one's samples in archive order.

    Attributes:
        shards: the shard paths.
        members: per shard, the image member of each of its samples.
        labels: int array of shape `(N,)`, or None when unlabelled.
        size: the side of the decoded images (of the crops and evaluation
            views, with `stored_side`), in pixels.
        class_names: the names of the label values, when known.
        skipped: the samples left out, each with its reason.
        shuffle_buffer: samples held to shuffle the stream in training.
        stored_side: None squashes every image to `size` x `size`; else
            images keep their aspect ratio, as `Files.stored_side` says:
            streaming training crops each decoded original, `batches`
            yields its centred evaluation view, and `take`/`in_memory`
            store it with this shorter side on a padded canvas.
    """

    shards: tuple
    members: tuple
    labels: np.ndarray | None
    size: int
    class_names: tuple = ()
    skipped: tuple = ()
    shuffle_buffer: int = 1000
    stored_side: int | None = None

    def __post_init__(self):
        self.offsets = np.cumsum([0, *(len(m) for m in self.members)])

    def __len__(self):
        return int(self.offsets[-1])

    @property
    def image_shape(self):
        """`(H, W, C)` of every decoded image."""
        return (self.size, self.size, 3)

    @property
    def nbytes(self):
        """The memory the decoded images would take as uint8 (about, for
        aspect-kept images: the canvas depends on their shapes)."""
        side = self.stored_side or self.size
        return len(self) * side * side * 3

    def name(self, index):
        """`shard.tar:member` of sample `index`."""
        shard = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return f"{self.shards[shard]}:{self.members[shard][index - self.offsets[shard]]}"

    def samples(self, shard, wanted=None):
        """Yields `(index, bytes)` of `shard`'s samples (those of `wanted`,
        a set of indices, if given), reading it once.

        A shard that stops being readable part-way ends its samples there:
        named in a warning and in `skipped`, once (the index names the
        damage it found).
        """
        lookup = {name: self.offsets[shard] + i for i, name in enumerate(self.members[shard])}
        try:
            for name, data in read_members(self.shards[shard]):
                index = lookup.get(name)
                if index is not None and (wanted is None or index in wanted):
                    yield int(index), data
        except (DamagedShard, OSError) as exc:
            line = f"{self.shards[shard]} ({exc})"
            if line not in self.skipped:
                self.skipped = (*self.skipped, line)
                warnings.warn(f"skipped the rest of a damaged shard: {line}", stacklevel=2)

    def stream(self, seed, epoch):
        """Yields sample indices and bytes `(index, bytes)` without end, in
        the order of epoch `epoch`: passes over the shards, each in an order
        drawn from `(seed, epoch)`, read sequentially through a shuffle
        buffer of `shuffle_buffer` samples drawn from the same generator
        (emptied at the end of each pass, so a pass holds every sample once).
        Deterministic, so a resumed run sees the same stream."""
        rng = np.random.default_rng([seed, epoch])
        capacity = max(1, min(self.shuffle_buffer, len(self)))
        while True:
            buffer, read = [], 0
            for shard in rng.permutation(len(self.shards)):
                for item in self.samples(int(shard)):
                    buffer.append(item)
                    read += 1
                    if len(buffer) >= capacity:
                        yield _pop(buffer, rng)
            # Each pass ends with its own samples: every sample once a pass.
            while buffer:
                yield _pop(buffer, rng)
            if not read:
                return

    def decoded(self, wanted=None, batch_size=256):
        """Yields `(indices, images)` of the samples (those of `wanted`), in
        index order, decoded with PIL on a thread pool, `batch_size` at a
        time (with `stored_side`, `images` is a list of each one's stored
        shape). An undecodable sample becomes a black image, named in a
        warning, so that the images stay aligned with the labels."""
        chunk = []
        workers = min(8, os.cpu_count() or 1)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for shard in range(len(self.shards)):
                for item in self.samples(shard, wanted):
                    chunk.append(item)
                    if len(chunk) == batch_size:
                        yield self._decode(chunk, pool)
                        chunk = []
            if chunk:
                yield self._decode(chunk, pool)

    def _decode(self, chunk, pool):
        results = list(pool.map(
            lambda item: decode_bytes(item[1], self.size, self.stored_side), chunk))
        images = []
        for (index, _), (image, reason) in zip(chunk, results, strict=True):
            if image is None:
                warnings.warn(f"{self.name(index)} ({reason}): a black image in its place",
                              stacklevel=3)
                side = self.stored_side or self.size
                image = np.zeros((side, side, 3), np.uint8)
            images.append(image)
        indices = np.array([index for index, _ in chunk])
        return indices, (images if self.stored_side else np.stack(images))

    def batches(self, batch_size=256):
        """Yields the decoded images in index order, as uint8 batches of at
        most `batch_size` (see `decoded`); with `stored_side`, the centred
        evaluation view of each (`contrastive.datasets.aspect.centre_views`
        of the stored image, as `Arrays.batches` yields in memory)."""
        for _, images in self.decoded(batch_size=batch_size):
            if self.stored_side:
                canvas, sizes = pad_to_canvas(images)
                images = centre_views(canvas, sizes, self.size)
            yield images

    def take(self, indices):
        """The samples at `indices`, decoded, as `Arrays` (with
        `stored_side`, on a padded canvas with their `sizes`)."""
        from contrastive.datasets.base import Arrays

        indices = np.asarray(indices, dtype=np.int64)
        found = {}
        for got, images in self.decoded(set(indices.tolist())):
            found.update(zip(got.tolist(), images, strict=True))
        labels = None if self.labels is None else self.labels[indices]
        if self.stored_side:
            canvas, sizes = pad_to_canvas([found[i] for i in indices.tolist()])
            return Arrays(canvas, labels, self.class_names, sizes=sizes, view_size=self.size)
        images = np.stack([found[i] for i in indices.tolist()])
        return Arrays(images, labels, self.class_names)

    def in_memory(self):
        """All the decoded images as `Arrays`."""
        return self.take(np.arange(len(self)))


def _pop(buffer, rng):
    # Swap the drawn sample with the last one: O(1), and deterministic.
    pick = int(rng.integers(len(buffer)))
    buffer[pick], buffer[-1] = buffer[-1], buffer[pick]
    return buffer.pop()
