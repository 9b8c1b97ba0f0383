"""DeepMind's multi-object datasets in their native format: specs, reader and writer.

Each dataset is one GZIP-compressed TFRecord file of ``tf.train.Example`` records
with fixed-length features. Every uint8 array (image, mask and CLEVR's
size/material/shape/color) is a BytesList holding one 1-byte string per element in
C order; every other feature is a FloatList. ``read`` returns exactly what the
official readers (github.com/deepmind/multi_object_datasets) return: the same keys,
dtypes, shapes and values, with masks as ``[E, H, W, 1]`` uint8 (0 or 255) — the
multi_dsprites files store them as ``[H, W, E, 1]`` and are transposed on read.

Bad input fails loudly and names the culprit: a missing file raises
``FileNotFoundError`` with the expected file name; a file that is not GZIP raises
``CorruptFileError`` when ``read`` is called; a record that does not match the spec
raises ``tf.errors.InvalidArgumentError`` whose message starts with
``Name: <file> record <index>`` and names the feature; ``iterate`` (used by the
TFDS builder) turns a truncated/corrupt GZIP stream into ``CorruptFileError`` naming
the file and mismatching records into ``RecordFormatError``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import tensorflow as tf

UINT8 = "uint8"  # stored as one 1-byte string per element
FLOAT32 = "float32"  # stored as a FloatList


class CorruptFileError(OSError):
    """A native file is not a complete GZIP TFRecord file."""


class RecordFormatError(ValueError):
    """A native record does not match its dataset's spec."""


@dataclasses.dataclass(frozen=True)
class Feature:
    """One fixed-length feature. ``shape`` is what ``read`` returns."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # UINT8 or FLOAT32
    stored_order: tuple[int, ...] | None = None  # axes of ``shape`` as laid out on disk

    @property
    def stored_shape(self) -> tuple[int, ...]:
        if self.stored_order is None:
            return self.shape
        return tuple(self.shape[a] for a in self.stored_order)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset (variant) of the collection.

    Args:
        dataset: collection member, e.g. ``"multi_dsprites"``.
        variant: e.g. ``"colored_on_grayscale"``; None for single-variant datasets.
        file_name: name of the official file in the GCS bucket.
        num_entities: E, masks per image (background entities included).
        features: every feature of a record, in the official readers' order.
        num_background: how many leading entities are background (the README:
            CLEVR, multi_dsprites, tetrominoes 1; objects_room 4 = sky, floor and
            two wall halves).
    """

    dataset: str
    variant: str | None
    file_name: str
    num_entities: int
    features: tuple[Feature, ...]
    num_background: int = 1

    @property
    def name(self) -> str:
        """Config name: ``dataset`` or ``dataset_variant``."""
        return self.dataset if self.variant is None else f"{self.dataset}_{self.variant}"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.feature("image").shape

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no feature {name!r}")


def _clevr() -> DatasetSpec:
    e, h, w = 11, 240, 320
    u8 = [Feature(k, (e,), UINT8) for k in ("size", "material", "shape", "color")]
    return DatasetSpec(
        "clevr_with_masks",
        None,
        "clevr_with_masks_train.tfrecords",
        e,
        (
            Feature("image", (h, w, 3), UINT8),
            Feature("mask", (e, h, w, 1), UINT8),
            Feature("x", (e,), FLOAT32),
            Feature("y", (e,), FLOAT32),
            Feature("z", (e,), FLOAT32),
            Feature("pixel_coords", (e, 3), FLOAT32),
            Feature("rotation", (e,), FLOAT32),
            *u8,
            Feature("visibility", (e,), FLOAT32),
        ),
    )


def _multi_dsprites(variant: str, e: int) -> DatasetSpec:
    c = 1 if variant == "binarized" else 3
    return DatasetSpec(
        "multi_dsprites",
        variant,
        f"multi_dsprites_{variant}.tfrecords",
        e,
        (
            Feature("image", (64, 64, c), UINT8),
            Feature("mask", (e, 64, 64, 1), UINT8, stored_order=(1, 2, 0, 3)),
            Feature("x", (e,), FLOAT32),
            Feature("y", (e,), FLOAT32),
            Feature("shape", (e,), FLOAT32),
            Feature("color", (e, c), FLOAT32),
            Feature("visibility", (e,), FLOAT32),
            Feature("orientation", (e,), FLOAT32),
            Feature("scale", (e,), FLOAT32),
        ),
    )


def _tetrominoes() -> DatasetSpec:
    e = 4
    return DatasetSpec(
        "tetrominoes",
        None,
        "tetrominoes_train.tfrecords",
        e,
        (
            Feature("image", (35, 35, 3), UINT8),
            Feature("mask", (e, 35, 35, 1), UINT8),
            Feature("x", (e,), FLOAT32),
            Feature("y", (e,), FLOAT32),
            Feature("shape", (e,), FLOAT32),
            Feature("color", (e, 3), FLOAT32),
            Feature("visibility", (e,), FLOAT32),
        ),
    )


def _objects_room(variant: str, e: int) -> DatasetSpec:
    file_name = (
        "objects_room_train.tfrecords"
        if variant == "train"
        else f"objects_room_test_{variant}.tfrecords"
    )
    return DatasetSpec(
        "objects_room",
        variant,
        file_name,
        e,
        (Feature("image", (64, 64, 3), UINT8), Feature("mask", (e, 64, 64, 1), UINT8)),
        num_background=4,
    )


SPECS: dict[tuple[str, str | None], DatasetSpec] = {
    (s.dataset, s.variant): s
    for s in (
        _clevr(),
        _multi_dsprites("binarized", 4),
        _multi_dsprites("colored_on_grayscale", 6),
        _multi_dsprites("colored_on_colored", 5),
        _tetrominoes(),
        _objects_room("train", 7),
        _objects_room("six_objects", 10),
        _objects_room("empty_room", 4),
        _objects_room("identical_color", 10),
    )
}
DATASETS: tuple[str, ...] = tuple(dict.fromkeys(d for d, _ in SPECS))


def variants(dataset: str) -> tuple[str | None, ...]:
    """Variants of ``dataset`` (``(None,)`` for single-variant datasets)."""
    found = tuple(v for d, v in SPECS if d == dataset)
    if not found:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    return found


def get_spec(dataset: str, variant: str | None = None) -> DatasetSpec:
    """The spec of ``dataset`` (and ``variant``); unknown names fail loudly."""
    allowed = variants(dataset)
    if variant not in allowed:
        raise ValueError(
            f"dataset {dataset!r} has variants {list(allowed)}, got variant={variant!r}"
        )
    return SPECS[(dataset, variant)]


def native_file_name(dataset: str, variant: str | None = None) -> str:
    """Official file name, e.g. ``clevr_with_masks_train.tfrecords``."""
    return get_spec(dataset, variant).file_name


def find_native_file(directory: str | os.PathLike, dataset: str, variant=None) -> str:
    """Path of the official file inside ``directory`` or ``directory/<dataset>/``."""
    name = native_file_name(dataset, variant)
    candidates = [os.path.join(directory, name), os.path.join(directory, dataset, name)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"{name!r} not found for {get_spec(dataset, variant).name}: looked for "
        f"{' and '.join(candidates)}. Download it from gs://multi-object-datasets/"
        f"{dataset}/{name}"
    )


def _check_file(path: str, spec: DatasetSpec) -> None:
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no such file (the {spec.name} data is the official file {spec.file_name!r})"
        )
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic and magic != b"\x1f\x8b":
        raise CorruptFileError(f"{path}: not a GZIP file (expected {spec.file_name!r})")


def _parse(index, record, spec: DatasetSpec, path: str) -> dict[str, tf.Tensor]:
    """One serialized record -> the official readers' dict."""
    name = tf.strings.format("{} record {}", (path, index))
    features = {
        f.name: tf.io.FixedLenFeature(f.stored_shape, tf.string if f.dtype == UINT8 else tf.float32)
        for f in spec.features
    }
    # parse_example (not parse_single_example) puts the name into error messages.
    parsed = tf.io.parse_example(
        tf.reshape(record, [1]), features, example_names=tf.reshape(name, [1])
    )
    out = {}
    for f in spec.features:
        value = parsed[f.name][0]
        if f.dtype == UINT8:
            one_byte = tf.reduce_all(tf.equal(tf.strings.length(value), 1))
            check = tf.debugging.Assert(
                one_byte, ["Name:", name, f"Key: {f.name}. Elements must be 1-byte strings."]
            )
            with tf.control_dependencies([check]):
                value = tf.squeeze(tf.io.decode_raw(value, tf.uint8), axis=-1)
            value = tf.ensure_shape(value, f.stored_shape)
        if f.stored_order is not None:
            value = tf.transpose(value, np.argsort(f.stored_order))  # back to ``shape``
        out[f.name] = value
    return out


def read(
    path: str | os.PathLike,
    dataset: str,
    variant: str | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
    num_parallel_calls: int | None = tf.data.AUTOTUNE,
) -> tf.data.Dataset:
    """Records ``start <= i < stop`` of a native file, parsed in the graph in parallel.

    Returns a ``tf.data.Dataset`` of dicts with the official readers' keys, dtypes,
    shapes and values (see ``get_spec(...).features``). Records outside the range are
    skipped before parsing.
    """
    spec = get_spec(dataset, variant)
    path = os.fspath(path)
    _check_file(path, spec)
    raw = tf.data.TFRecordDataset(path, compression_type="GZIP").enumerate()
    raw = raw.skip(start)
    if stop is not None:
        raw = raw.take(max(0, stop - start))
    return raw.map(
        lambda i, r: _parse(i, r, spec, path),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )


def _clean(message: str) -> str:
    """TF's error text from our record name on, without node and op suffixes."""
    start = message.find("Name: ")
    message = message[start:] if start >= 0 else message
    message = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[\[\{\{node .*", "", message, flags=re.S)
    return re.sub(r"\s*\[Op:\w+\].*", "", message, flags=re.S).strip()


def as_numpy(path: str | os.PathLike, dataset: tf.data.Dataset) -> Iterator:
    """Iterate ``dataset`` (built on the native file ``path``) as numpy.

    TF's bare ``DataLossError`` becomes ``CorruptFileError`` naming ``path``; a
    record that does not match its spec becomes ``RecordFormatError`` naming the
    file, the record index and the feature.
    """
    path = os.fspath(path)
    try:
        yield from dataset.as_numpy_iterator()
    except tf.errors.DataLossError as e:
        raise CorruptFileError(
            f"{path}: truncated or corrupt GZIP TFRecord file ({_clean(e.message)})"
        ) from None
    except tf.errors.InvalidArgumentError as e:
        raise RecordFormatError(f"record does not match the spec: {_clean(e.message)}") from None


def iterate(
    path: str | os.PathLike,
    dataset: str,
    variant: str | None = None,
    *,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """``read`` as numpy dicts, with TF's errors turned into errors naming the file."""
    return as_numpy(path, read(path, dataset, variant, start=start, stop=stop))


def count_records(path: str | os.PathLike, limit: int | None = None) -> int:
    """Number of records in a GZIP TFRecord file (stops counting at ``limit``)."""
    path = os.fspath(path)
    ds = tf.data.TFRecordDataset(path, compression_type="GZIP")
    if limit is not None:
        ds = ds.take(limit)
    ds = ds.batch(1024).map(lambda b: tf.shape(b)[0])
    return int(sum(as_numpy(path, ds)))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature_entry(name: str, value: np.ndarray, dtype: str) -> bytes:
    """One ``Features.feature`` map entry holding a BytesList or a FloatList."""
    if dtype == UINT8:
        # BytesList.value (field 1): tag 0x0A, length 1, the byte — per element.
        elements = np.empty((value.size, 3), np.uint8)
        elements[:, 0], elements[:, 1], elements[:, 2] = 0x0A, 1, value
        feature = _field(1, elements.tobytes())  # Feature.bytes_list = 1
    else:
        packed = _field(1, value.astype("<f4").tobytes())  # FloatList.value, packed
        feature = _field(2, packed)  # Feature.float_list = 2
    return _field(1, _field(1, name.encode()) + _field(2, feature))  # map entry


def encode(example: Mapping[str, np.ndarray], spec: DatasetSpec) -> bytes:
    """A serialized ``tf.train.Example`` in the official byte format.

    ``example`` holds every feature of ``spec`` in the layout ``read`` returns
    (masks ``[E, H, W, 1]``); uint8 features must hold integers in [0, 255]. The
    protobuf wire format is written directly with numpy (a BytesList of a million
    1-byte strings takes ~100x longer through the protobuf API).
    """
    missing = [f.name for f in spec.features if f.name not in example]
    if missing:
        raise ValueError(f"{spec.name} example lacks features {missing}")
    entries = []
    for f in spec.features:
        value = np.asarray(example[f.name])
        if value.shape != f.shape:
            raise ValueError(
                f"{spec.name} feature {f.name!r}: shape {value.shape}, expected {f.shape}"
            )
        if f.stored_order is not None:
            value = value.transpose(f.stored_order)
        flat = value.ravel()
        if f.dtype == UINT8:
            integral = flat.dtype.kind in "ui" or np.all(flat == np.round(flat))
            if flat.size and (flat.min() < 0 or flat.max() > 255 or not integral):
                raise ValueError(f"{spec.name} feature {f.name!r}: values are not uint8")
            flat = flat.astype(np.uint8)
        entries.append(_feature_entry(f.name, flat, f.dtype))
    return _field(1, b"".join(entries))  # Example.features = 1


def write(
    path: str | os.PathLike,
    examples: Iterable[Mapping[str, np.ndarray]],
    dataset: str,
    variant: str | None = None,
) -> int:
    """Write ``examples`` as a native GZIP TFRecord file; returns the record count.

    The file appears at ``path`` only once complete (written under a temporary name).
    """
    spec = get_spec(dataset, variant)
    path = os.fspath(path)
    tmp = f"{path}.incomplete"
    count = 0
    try:
        with tf.io.TFRecordWriter(tmp, options="GZIP") as writer:
            for example in examples:
                writer.write(encode(example, spec))
                count += 1
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return count
