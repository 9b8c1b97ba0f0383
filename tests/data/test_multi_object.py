"""Native DeepMind records: specs, writer -> reader round trips, and bad input."""

import gzip
import os
import zlib

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.data import multi_object

U8, F32 = np.uint8, np.float32

# The official readers' features (github.com/deepmind/multi_object_datasets), written
# out by hand: name -> (shape returned by the reader, dtype, shape stored on disk).
_CLEVR = {
    "image": ((240, 320, 3), U8, None),
    "mask": ((11, 240, 320, 1), U8, None),
    "x": ((11,), F32, None),
    "y": ((11,), F32, None),
    "z": ((11,), F32, None),
    "pixel_coords": ((11, 3), F32, None),
    "rotation": ((11,), F32, None),
    "size": ((11,), U8, None),
    "material": ((11,), U8, None),
    "shape": ((11,), U8, None),
    "color": ((11,), U8, None),
    "visibility": ((11,), F32, None),
}


def _dsprites(e, c):
    return {
        "image": ((64, 64, c), U8, None),
        "mask": ((e, 64, 64, 1), U8, (64, 64, e, 1)),
        "x": ((e,), F32, None),
        "y": ((e,), F32, None),
        "shape": ((e,), F32, None),
        "color": ((e, c), F32, None),
        "visibility": ((e,), F32, None),
        "orientation": ((e,), F32, None),
        "scale": ((e,), F32, None),
    }


def _room(e):
    return {"image": ((64, 64, 3), U8, None), "mask": ((e, 64, 64, 1), U8, None)}


OFFICIAL = {
    ("clevr_with_masks", None): ("clevr_with_masks_train.tfrecords", _CLEVR),
    ("multi_dsprites", "binarized"): ("multi_dsprites_binarized.tfrecords", _dsprites(4, 1)),
    ("multi_dsprites", "colored_on_grayscale"): (
        "multi_dsprites_colored_on_grayscale.tfrecords",
        _dsprites(6, 3),
    ),
    ("multi_dsprites", "colored_on_colored"): (
        "multi_dsprites_colored_on_colored.tfrecords",
        _dsprites(5, 3),
    ),
    ("tetrominoes", None): (
        "tetrominoes_train.tfrecords",
        {
            "image": ((35, 35, 3), U8, None),
            "mask": ((4, 35, 35, 1), U8, None),
            "x": ((4,), F32, None),
            "y": ((4,), F32, None),
            "shape": ((4,), F32, None),
            "color": ((4, 3), F32, None),
            "visibility": ((4,), F32, None),
        },
    ),
    ("objects_room", "train"): ("objects_room_train.tfrecords", _room(7)),
    ("objects_room", "six_objects"): ("objects_room_test_six_objects.tfrecords", _room(10)),
    ("objects_room", "empty_room"): ("objects_room_test_empty_room.tfrecords", _room(4)),
    ("objects_room", "identical_color"): (
        "objects_room_test_identical_color.tfrecords",
        _room(10),
    ),
}


def random_example(features, rng):
    """Random values for every feature (masks 0/255, images any uint8)."""
    out = {}
    for name, (shape, dtype, _) in features.items():
        if name == "mask":
            out[name] = rng.choice(np.array([0, 255], U8), size=shape)
        elif dtype == U8:
            out[name] = rng.integers(0, 256, size=shape, dtype=U8)
        else:
            out[name] = rng.normal(size=shape).astype(F32)
    return out


def official_reader(path, features):
    """The official readers' decoding, from the hand-written feature table."""
    spec = {
        name: tf.io.FixedLenFeature(stored or shape, tf.string if dtype == U8 else tf.float32)
        for name, (shape, dtype, stored) in features.items()
    }

    def decode(record):
        example = tf.io.parse_single_example(record, spec)
        for name, (_, dtype, stored) in features.items():
            if dtype == U8:
                example[name] = tf.squeeze(tf.io.decode_raw(example[name], tf.uint8), axis=-1)
            if stored is not None:  # multi_dsprites masks: [H, W, E, 1] -> [E, H, W, 1]
                example[name] = tf.transpose(example[name], [2, 0, 1, 3])
        return example

    return tf.data.TFRecordDataset(path, compression_type="GZIP").map(decode)


def test_registry_matches_the_official_readers():
    assert set(multi_object.SPECS) == set(OFFICIAL)
    for (dataset, variant), (file_name, features) in OFFICIAL.items():
        spec = multi_object.get_spec(dataset, variant)
        assert multi_object.native_file_name(dataset, variant) == file_name
        assert [f.name for f in spec.features] == list(features)
        for f in spec.features:
            shape, dtype, stored = features[f.name]
            assert (f.shape, np.dtype(f.dtype), f.stored_shape) == (
                shape,
                np.dtype(dtype),
                stored or shape,
            )
        assert spec.num_entities == features["mask"][0][0]


@pytest.mark.parametrize("key", sorted(OFFICIAL, key=str), ids=lambda k: "-".join(map(str, k)))
def test_round_trip_equals_the_official_reader(key, tmp_path):
    dataset, variant = key
    file_name, features = OFFICIAL[key]
    rng = np.random.default_rng(zlib.crc32(file_name.encode()))
    examples = [random_example(features, rng) for _ in range(2)]
    path = tmp_path / file_name
    assert multi_object.write(path, examples, dataset, variant) == 2
    with gzip.open(path) as f:  # a real GZIP stream
        assert len(f.read()) > 0
    ours = list(multi_object.read(path, dataset, variant).as_numpy_iterator())
    theirs = list(official_reader(str(path), features).as_numpy_iterator())
    assert len(ours) == len(theirs) == 2
    for mine, official, original in zip(ours, theirs, examples, strict=True):
        assert set(mine) == set(official) == set(features)
        for name in features:
            assert mine[name].dtype == official[name].dtype == features[name][1]
            np.testing.assert_array_equal(mine[name], official[name])
            np.testing.assert_array_equal(mine[name], original[name])


def test_multi_dsprites_masks_are_stored_height_width_entity(tmp_path):
    file_name, features = OFFICIAL[("multi_dsprites", "colored_on_colored")]
    example = random_example(features, np.random.default_rng(0))
    path = tmp_path / file_name
    multi_object.write(path, [example], "multi_dsprites", "colored_on_colored")
    raw = next(iter(tf.data.TFRecordDataset(str(path), compression_type="GZIP")))
    stored = tf.io.parse_single_example(
        raw, {"mask": tf.io.FixedLenFeature([64, 64, 5, 1], tf.string)}
    )
    on_disk = tf.squeeze(tf.io.decode_raw(stored["mask"], tf.uint8), -1).numpy()  # [H, W, E, 1]
    assert on_disk[3, 7, 2, 0] == example["mask"][2, 3, 7, 0]
    np.testing.assert_array_equal(on_disk, example["mask"].transpose(1, 2, 0, 3))


def test_uint8_elements_are_one_byte_strings(tmp_path):
    example = random_example(OFFICIAL[("tetrominoes", None)][1], np.random.default_rng(1))
    proto = tf.train.Example.FromString(
        multi_object.encode(example, multi_object.get_spec("tetrominoes"))
    )
    image = proto.features.feature["image"].bytes_list.value
    assert len(image) == 35 * 35 * 3
    assert all(len(v) == 1 for v in image)
    assert [v[0] for v in image[:5]] == example["image"].ravel()[:5].tolist()
    assert list(proto.features.feature["x"].float_list.value) == example["x"].tolist()


def test_read_a_range_keeps_record_numbers(tmp_path):
    features = OFFICIAL[("objects_room", "empty_room")][1]
    examples = [random_example(features, np.random.default_rng(i)) for i in range(5)]
    path = tmp_path / "room.tfrecords"
    multi_object.write(path, examples, "objects_room", "empty_room")
    got = list(multi_object.iterate(path, "objects_room", "empty_room", start=2, stop=4))
    assert len(got) == 2
    np.testing.assert_array_equal(got[0]["image"], examples[2]["image"])
    np.testing.assert_array_equal(got[1]["mask"], examples[3]["mask"])
    assert multi_object.count_records(path) == 5
    assert multi_object.count_records(path, limit=3) == 3


def test_unknown_names_fail_loudly():
    with pytest.raises(ValueError, match="unknown dataset"):
        multi_object.get_spec("clevr")
    with pytest.raises(ValueError, match="binarized"):
        multi_object.get_spec("multi_dsprites")  # a variant is required
    with pytest.raises(ValueError, match="variant"):
        multi_object.get_spec("tetrominoes", "train")


def test_missing_file_names_path_and_expected_file(tmp_path):
    path = tmp_path / "nowhere.tfrecords"
    with pytest.raises(FileNotFoundError) as error:
        multi_object.read(path, "tetrominoes")
    assert str(path) in str(error.value) and "tetrominoes_train.tfrecords" in str(error.value)
    with pytest.raises(FileNotFoundError) as error:
        multi_object.find_native_file(tmp_path, "objects_room", "six_objects")
    message = str(error.value)
    assert "objects_room_test_six_objects.tfrecords" in message
    assert os.path.join(str(tmp_path), "objects_room") in message


def test_find_native_file_in_dataset_subfolder(tmp_path):
    (tmp_path / "tetrominoes").mkdir()
    target = tmp_path / "tetrominoes" / "tetrominoes_train.tfrecords"
    target.write_bytes(b"")
    assert multi_object.find_native_file(tmp_path, "tetrominoes") == str(target)


def test_not_gzip_is_reported_with_the_file(tmp_path):
    path = tmp_path / "tetrominoes_train.tfrecords"
    path.write_bytes(b"this is not a gzip stream" * 10)
    with pytest.raises(multi_object.CorruptFileError, match=str(path)):
        multi_object.read(path, "tetrominoes")


def test_truncated_gzip_is_reported_with_the_file(tmp_path):
    features = OFFICIAL[("tetrominoes", None)][1]
    examples = [random_example(features, np.random.default_rng(i)) for i in range(6)]
    path = tmp_path / "tetrominoes_train.tfrecords"
    multi_object.write(path, examples, "tetrominoes")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(multi_object.CorruptFileError) as error:
        list(multi_object.iterate(path, "tetrominoes"))
    assert str(path) in str(error.value) and "truncated" in str(error.value)
    with pytest.raises(multi_object.CorruptFileError, match=str(path)):
        multi_object.count_records(path)


def _write_raw(path, records):
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for record in records:
            writer.write(record)


def test_mismatching_record_names_file_record_and_feature(tmp_path):
    spec = multi_object.get_spec("tetrominoes")
    features = OFFICIAL[("tetrominoes", None)][1]
    good = [
        multi_object.encode(random_example(features, np.random.default_rng(i)), spec)
        for i in range(2)
    ]
    bad = tf.train.Example.FromString(good[0])
    del bad.features.feature["x"].float_list.value[-1]  # 3 floats instead of 4
    path = tmp_path / "tetrominoes_train.tfrecords"
    _write_raw(path, good + [bad.SerializeToString()])
    with pytest.raises(multi_object.RecordFormatError) as error:
        list(multi_object.iterate(path, "tetrominoes"))
    message = str(error.value)
    assert str(path) in message and "record 2" in message and "Key: x" in message


def test_wrong_variant_is_a_mismatch(tmp_path):
    features = OFFICIAL[("objects_room", "train")][1]
    path = tmp_path / "objects_room_train.tfrecords"
    multi_object.write(
        path, [random_example(features, np.random.default_rng(0))], "objects_room", "train"
    )
    with pytest.raises(multi_object.RecordFormatError, match="record 0.*mask"):
        list(multi_object.iterate(path, "objects_room", "six_objects"))


def test_multi_byte_element_names_the_feature(tmp_path):
    spec = multi_object.get_spec("tetrominoes")
    example = random_example(OFFICIAL[("tetrominoes", None)][1], np.random.default_rng(0))
    proto = tf.train.Example.FromString(multi_object.encode(example, spec))
    proto.features.feature["image"].bytes_list.value[10] = b"ab"
    path = tmp_path / "tetrominoes_train.tfrecords"
    _write_raw(path, [multi_object.encode(example, spec), proto.SerializeToString()])
    with pytest.raises(multi_object.RecordFormatError) as error:
        list(multi_object.iterate(path, "tetrominoes"))
    message = str(error.value)
    assert "record 1" in message and "Key: image" in message and "1-byte" in message


def test_writer_rejects_bad_examples(tmp_path):
    spec = multi_object.get_spec("tetrominoes")
    example = random_example(OFFICIAL[("tetrominoes", None)][1], np.random.default_rng(0))
    with pytest.raises(ValueError, match="'mask'.*shape"):
        multi_object.encode({**example, "mask": example["mask"][:3]}, spec)
    with pytest.raises(ValueError, match="'image'.*uint8"):
        multi_object.encode({**example, "image": example["image"].astype(np.int32) + 200}, spec)
    with pytest.raises(ValueError, match="lacks.*color"):
        multi_object.encode({k: v for k, v in example.items() if k != "color"}, spec)
    path = tmp_path / "t.tfrecords"
    with pytest.raises(ValueError):
        multi_object.write(path, [example, {**example, "x": np.zeros(3)}], "tetrominoes")
    assert not path.exists() and not (tmp_path / "t.tfrecords.incomplete").exists()


def test_encoding_equals_the_protobuf_api():
    spec = multi_object.get_spec("multi_dsprites", "binarized")
    example = random_example(OFFICIAL[("multi_dsprites", "binarized")][1], np.random.default_rng(2))
    reference = tf.train.Example()
    for f in spec.features:
        value = example[f.name].transpose(f.stored_order) if f.stored_order else example[f.name]
        if f.dtype == multi_object.UINT8:
            strings = [bytes([v]) for v in value.ravel().tolist()]
            reference.features.feature[f.name].bytes_list.value.extend(strings)
        else:
            reference.features.feature[f.name].float_list.value.extend(value.ravel().tolist())
    assert tf.train.Example.FromString(multi_object.encode(example, spec)) == reference
