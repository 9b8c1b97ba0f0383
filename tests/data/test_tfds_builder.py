"""TFDS builder: configs, splits, compact encoding, DeepMind and synthetic builds."""

import os

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.data import compact, multi_object, synthetic, tfds_builder


def _examples(builder, split):
    ds = builder.as_dataset(split=split).map(
        lambda ex: tfds_builder.official(ex, builder.builder_config.spec.num_entities)
    )
    return list(ds.as_numpy_iterator())


def test_split_bounds():
    assert tfds_builder.split_bounds("clevr_with_masks", 100_000) == {
        "train": (0, 70_000),
        "validation": (70_000, 85_000),
        "test": (85_000, 100_000),
    }
    assert tfds_builder.split_bounds("clevr_with_masks", 1000) == {
        "train": (0, 700),
        "validation": (700, 850),
        "test": (850, 1000),
    }
    assert tfds_builder.split_bounds("tetrominoes", 10) == {
        "train": (0, 7),
        "validation": (7, 8),
        "test": (8, 10),
    }
    bounds = tfds_builder.split_bounds("multi_dsprites", 1_000_000)
    assert bounds["validation"] == (700_000, 850_000)


def test_config_names_encode_the_size():
    assert tfds_builder.make_config().name == "synthetic"
    assert tfds_builder.make_config(num_examples=10_000).name == "synthetic"
    custom = tfds_builder.make_config(num_examples=20, height=48, width=64, seed=3)
    assert custom.name == "synthetic_n20_48x64_s3"
    assert tfds_builder.make_config("clevr_with_masks", num_examples=1000).name == (
        "clevr_with_masks_n1000"
    )
    named = {c.name for c in tfds_builder.MultiObject.BUILDER_CONFIGS}
    assert named == {"synthetic"} | {s.name for s in multi_object.SPECS.values()}
    with pytest.raises(ValueError, match="synthetic"):
        tfds_builder.make_config("tetrominoes", height=10)
    with pytest.raises(ValueError):
        tfds_builder.make_config("multi_dsprites", "nope")


def test_label_map_is_exact_only_for_disjoint_binary_masks():
    mask = np.zeros((3, 2, 3, 1), np.uint8)
    mask[0, 0, :2] = 255
    mask[2, 1, 1:] = 255
    labels, exact = compact.label_map(mask)
    np.testing.assert_array_equal(labels[..., 0], [[0, 0, 255], [255, 2, 2]])
    assert exact
    mask[1, 0, 0] = 255  # two owners
    assert not compact.label_map(mask)[1]
    mask[1, 0, 0] = 0
    mask[1, 1, 0] = 128  # not binary
    assert not compact.label_map(mask)[1]


def test_synthetic_build_reproduces_the_scenes(tiny_data, tiny):
    builder = tiny_data.builder
    splits = builder.info.splits
    assert [splits[s].num_examples for s in ("train", "validation", "test")] == [28, 6, 6]
    config = synthetic.SceneConfig(tiny.height, tiny.width)
    for split, first in (("validation", 28), ("test", 34)):
        examples = _examples(builder, split)
        assert [int(e["record_index"]) for e in examples] == list(range(first, first + 6))
        for example in examples:
            scene = synthetic.scene(int(example["record_index"]), tiny.seed, config)
            for key, value in scene.items():
                expected = value > 0 if key == "visibility" else value
                np.testing.assert_array_equal(example[key], expected, err_msg=key)
            assert example["visibility"].dtype == bool


def test_native_clevr_build_matches_the_native_records(tmp_path):
    manual = tmp_path / "manual" / "clevr_with_masks"  # gsutil layout: <dir>/<dataset>/
    manual.mkdir(parents=True)
    scenes = list(synthetic.scenes(10, seed=5, config=synthetic.SceneConfig(240, 320)))
    multi_object.write(manual / "clevr_with_masks_train.tfrecords", scenes, "clevr_with_masks")
    builder = tfds_builder.builder("clevr_with_masks", data_dir=tmp_path / "tfds")
    tfds_builder.prepare(builder, manual_dir=tmp_path / "manual")
    assert [builder.info.splits[s].num_examples for s in ("train", "validation", "test")] == [
        7,
        1,
        2,
    ]
    examples = _examples(builder, "train") + _examples(builder, "validation")
    examples += _examples(builder, "test")
    assert [int(e["record_index"]) for e in examples] == list(range(10))
    for example, scene in zip(examples, scenes, strict=True):
        assert example["mask_stack"].shape[0] == 0 if "mask_stack" in example else True
        for key, value in scene.items():
            expected = value > 0 if key == "visibility" else value
            np.testing.assert_array_equal(example[key], expected, err_msg=key)
    assert "train" in tfds_builder.summary(builder) and "7 examples" in tfds_builder.summary(
        builder
    )


def test_overlapping_masks_keep_the_full_stack(tmp_path):
    rng = np.random.default_rng(0)
    examples = []
    for i in range(10):
        labels = rng.integers(0, 4, (64, 64))
        mask = (labels[None] == np.arange(4)[:, None, None]).astype(np.uint8) * 255
        mask[:, :2, :2] = 0  # unowned pixels are fine for a label map
        if i % 2:
            mask[1, 10:20, 10:20] = 255  # a second owner
            mask[2, 30, 30] = 77  # a soft value
        image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        examples.append({"image": image, "mask": mask[..., None]})
    multi_object.write(
        tmp_path / "objects_room_test_empty_room.tfrecords", examples, "objects_room", "empty_room"
    )
    builder = tfds_builder.builder("objects_room", "empty_room", data_dir=tmp_path / "tfds")
    tfds_builder.prepare(builder, manual_dir=tmp_path)
    raw = list(builder.as_dataset(split="train+validation+test").as_numpy_iterator())
    assert [r["mask_stack"].shape[0] for r in raw] == [0, 4] * 5
    decoded = _examples(builder, "train+validation+test")
    for example, original in zip(decoded, examples, strict=True):
        np.testing.assert_array_equal(example["mask"], original["mask"])
        np.testing.assert_array_equal(example["image"], original["image"])


def test_missing_native_file_lists_the_expected_name(tmp_path):
    builder = tfds_builder.builder("tetrominoes", data_dir=tmp_path / "tfds")
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "other.txt").write_text("not it")
    with pytest.raises(FileNotFoundError, match="tetrominoes_train.tfrecords"):
        tfds_builder.prepare(builder, manual_dir=tmp_path / "manual")
    with pytest.raises(FileNotFoundError, match="tetrominoes_train.tfrecords"):
        tfds_builder.prepare(builder, manual_dir=tmp_path / "absent")


def test_a_failed_build_leaves_nothing_that_loads(tmp_path):
    scenes = synthetic.scenes(12, config=synthetic.SceneConfig(240, 320))
    path = tmp_path / "clevr_with_masks_train.tfrecords"
    multi_object.write(path, scenes, "clevr_with_masks")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.8)])  # truncated download
    builder = tfds_builder.builder("clevr_with_masks", data_dir=tmp_path / "tfds")
    with pytest.raises(multi_object.CorruptFileError, match=str(path)):
        tfds_builder.prepare(builder, manual_dir=tmp_path)
    assert not builder.is_prepared()
    config_dir = tmp_path / "tfds" / "multi_object" / "clevr_with_masks"
    assert not config_dir.exists() or os.listdir(config_dir) == []
    fresh = tfds_builder.builder("clevr_with_masks", data_dir=tmp_path / "tfds")
    assert not fresh.is_prepared()


def test_official_decoding_inside_dataset_map_equals_eager(tiny_data):
    builder = tiny_data.builder
    raw = next(iter(builder.as_dataset(split="test")))
    eager = tfds_builder.official(raw, 11)
    mapped = next(
        iter(builder.as_dataset(split="test").map(lambda ex: tfds_builder.official(ex, 11)))
    )
    for key in eager:
        np.testing.assert_array_equal(eager[key].numpy(), mapped[key].numpy())
    assert eager["mask"].dtype == tf.uint8 and eager["mask"].shape == (11, 48, 64, 1)
