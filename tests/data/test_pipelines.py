"""Train / validation / test pipelines, VQA targets and inference preprocessing."""

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.data import augment, pipelines, synthetic

MEAN, STD = np.array(augment.IMAGENET_MEAN), np.array(augment.IMAGENET_STD)


def _stack(batches, key="images"):
    return np.concatenate([b[key].numpy() for b in batches])


def _views(batches):
    """Two-view batches -> (view 0 rows, view 1 rows) in image order."""
    first, second = [], []
    for b in batches:
        images = b["images"].numpy()
        half = len(images) // 2
        first.append(images[:half])
        second.append(images[half:])
    return np.concatenate(first), np.concatenate(second)


def test_train_batches_are_two_view_infinite_and_seeded(tiny_data, tiny):
    batches = list(tiny_data.train(batch_size=8, seed=3).take(5))  # 40 images > 28 train
    for b in batches:
        images = b["images"].numpy()
        assert images.shape == (16, tiny.crop_size, tiny.crop_size, 3)
        assert images.dtype == np.float32 and np.isfinite(images).all()
        # brightness ±0.2 is not clipped (as the original): values within [-0.2, 1.2]
        assert np.all(images >= ((-0.2 - MEAN) / STD).min() - 1e-5)
        assert np.all(images <= ((1.2 - MEAN) / STD).max() + 1e-5)
    again = list(tiny_data.train(batch_size=8, seed=3).take(5))
    np.testing.assert_array_equal(_stack(batches), _stack(again))
    other = next(iter(tiny_data.train(batch_size=8, seed=4)))["images"].numpy()
    assert not np.array_equal(other, batches[0]["images"].numpy())


def test_train_resumes_at_the_batch_of_an_uninterrupted_run(tiny_data):
    """start_step s yields the batches s, s+1, ... of the run from 0 (crossing epochs
    and the 16-epoch cycle of shuffle orders)."""
    # 28 train scenes, 4 per batch: 7 batches an epoch; step 9 is in epoch 1, step 115
    # in epoch 16 (the order of epoch 0 again, with other augmentations).
    full = [b["images"].numpy() for b in tiny_data.train(4, seed=3).take(118)]
    for start in (9, 115):
        resumed = [
            b["images"].numpy() for b in tiny_data.train(4, seed=3, start_step=start).take(3)
        ]
        for expected, actual in zip(full[start : start + 3], resumed, strict=True):
            np.testing.assert_array_equal(actual, expected)
    # Each epoch is reshuffled, and a repeated order gets new augmentations.
    assert not np.array_equal(full[0], full[7])
    assert not np.array_equal(full[0], full[112])


def test_cached_decoded_images_give_the_same_stream(tiny_data, tiny):
    """Decoded images kept in memory (the default for a small split) change nothing:
    the same batches as decoding every epoch, across epochs and from a resumed step."""
    assert tiny_data.decoded_train_mib() == 28 * tiny.height * tiny.width * 3 / 2**20
    assert tiny_data.decoded_train_mib() <= tiny_data.cache_mib  # tiny_data caches
    uncached = pipelines.MultiObjectData(
        data_dir=tiny_data.data_dir,
        num_examples=tiny.num_examples,
        image_size=(tiny.height, tiny.width),
        crop_size=tiny.crop_size,
        cache_mib=0,
    )
    for start in (0, 9):
        cached = tiny_data.train(4, seed=3, start_step=start).take(16)  # 2+ epochs of 7
        decoded = uncached.train(4, seed=3, start_step=start).take(16)
        np.testing.assert_array_equal(_stack(cached), _stack(decoded))
    with pytest.raises(ValueError, match="cache_mib"):
        _options(tiny_data, cache_mib=-1)


def test_validation_views_are_fixed_per_image(tiny_data):
    epoch1 = list(tiny_data.validation(batch_size=4))
    epoch2 = list(tiny_data.validation(batch_size=4))
    assert [b["images"].shape[0] for b in epoch1] == [8, 4]  # 6 images, finite
    np.testing.assert_array_equal(_stack(epoch1), _stack(epoch2))
    # Per-image seeds: the batch size does not change any view.
    v0, v1 = _views(epoch1)
    w0, w1 = _views(tiny_data.validation(batch_size=6))
    np.testing.assert_array_equal(v0, w0)
    np.testing.assert_array_equal(v1, w1)
    assert np.abs(v0 - v1).mean() > 0.05  # the two views differ


def _nearest(side, size):
    """Source rows of tf.image.resize(method='nearest') from side to size."""
    return np.minimum(np.floor((np.arange(size) + 0.5) * side / size).astype(int), side - 1)


def test_test_batches_match_an_oracle(tiny_data, tiny):
    batches = list(tiny_data.test(batch_size=4))
    assert [b["image"].shape[0] for b in batches] == [4, 2]
    b = batches[0]
    s, e = tiny.crop_size, 11
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in b.items()}
    assert shapes == {
        "image": ((4, s, s, 3), tf.float32),
        "image_uint8": ((4, s, s, 3), tf.uint8),
        "masks": ((4, e, s, s), tf.bool),
        "visibility": ((4, e), tf.bool),
        "vqa": ((4, 96), tf.float32),
    }
    config = synthetic.SceneConfig(tiny.height, tiny.width)
    side, left = tiny.height, (tiny.width - tiny.height) // 2  # centre square 48x48
    rows = _nearest(side, s)
    out = {k: np.concatenate([x[k].numpy() for x in batches]) for k in b}
    for k in range(6):
        scene = synthetic.scene(34 + k, tiny.seed, config)  # test = records 34..39
        masks = scene["mask"][:, :, left : left + side, 0] > 0  # [E, 48, 48]
        expected_masks = masks[:, rows][:, :, rows]
        np.testing.assert_array_equal(out["masks"][k], expected_masks)
        visible = expected_masks.any(axis=(1, 2)) & (scene["visibility"] > 0)
        np.testing.assert_array_equal(out["visibility"][k], visible)
        vqa = np.zeros(96)
        for j in np.flatnonzero(visible[1:]) + 1:
            codes = [int(scene[a][j]) - 1 for a in ("size", "color", "material", "shape")]
            vqa[np.ravel_multi_index(codes, (2, 8, 2, 3))] = 1
        np.testing.assert_array_equal(out["vqa"][k], vqa)
        crop = scene["image"][:, left : left + side].astype(np.float32)
        resized = tf.image.resize(crop, [s, s]).numpy()
        np.testing.assert_allclose(out["image_uint8"][k], resized, atol=0.51)
        np.testing.assert_allclose(out["image"][k], (resized / 255 - MEAN) / STD, atol=1e-4)
    assert out["vqa"].sum() > 6  # several objects per scene


def test_test_example_eager_equals_dataset_map(tiny_data):
    features = [f.name for f in tiny_data.spec.features if f.name != "mask"]
    ds = tiny_data._read("test", features + ["segmentation", "mask_stack"], None)
    raw = next(iter(ds))
    eager = tiny_data.test_example(raw)
    mapped = next(iter(ds.map(tiny_data.test_example)))
    for key in eager:
        np.testing.assert_allclose(eager[key].numpy(), mapped[key].numpy(), atol=1e-6)


def test_vqa_targets_on_hand_built_scenes():
    # Entities: background, a large red metal cylinder, the same again, a small gray
    # rubber cube that is not visible, and an absent entity flagged visible by mistake.
    size = tf.constant([[0, 1, 1, 2, 0]])
    color = tf.constant([[0, 2, 2, 1, 0]])
    material = tf.constant([[0, 2, 2, 1, 0]])
    shape = tf.constant([[0, 3, 3, 1, 0]])
    visible = tf.constant([[False, True, True, False, True]])
    target = pipelines.vqa_targets(size, color, material, shape, visible).numpy()
    expected = np.zeros((1, 96))
    expected[0, ((0 * 8 + 1) * 2 + 1) * 3 + 2] = 1  # index 11
    np.testing.assert_array_equal(target, expected)
    visible = tf.constant([[False, True, False, True, False]])
    target = pipelines.vqa_targets(size, color, material, shape, visible).numpy()
    assert target[0, 11] == 1 and target[0, ((1 * 8 + 0) * 2 + 0) * 3 + 0] == 1  # and 48
    assert target.sum() == 2


def test_preprocess_for_inference_centre_crops_any_shape():
    fn = tf.function(
        lambda x: pipelines.preprocess_for_inference(x, 16),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
    )
    ramp = np.broadcast_to(np.arange(80, dtype=np.uint8)[None, None, :, None], (2, 40, 80, 3))
    out = fn(tf.constant(ramp)).numpy()
    assert out.shape == (2, 16, 16, 3)
    expected = tf.image.resize(ramp[:, :, 20:60].astype(np.float32), [16, 16])
    np.testing.assert_allclose(out, (expected.numpy() / 255 - MEAN) / STD, atol=1e-4)
    tall = fn(tf.fill([1, 50, 30, 3], tf.constant(51, tf.uint8))).numpy()
    np.testing.assert_allclose(tall, np.broadcast_to((0.2 - MEAN) / STD, tall.shape), atol=1e-5)
    np.testing.assert_allclose(augment.denormalize(out).numpy(), expected / 255, atol=1e-5)


def test_input_context_shards_and_sizes_batches(tiny_data, tiny):
    seen = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(2, pipeline, 2)
        ds = tiny_data._read("validation", ("record_index",), context)
        seen.append({int(x["record_index"]) for x in ds})
        batch = next(iter(tiny_data.train(batch_size=8, seed=0, input_context=context)))
        assert batch["images"].shape == (8, tiny.crop_size, tiny.crop_size, 3)  # 4 per replica
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(28, 34))


def test_max_samples_caps_each_split(tiny_data):
    capped = pipelines.MultiObjectData(
        data_dir=tiny_data.data_dir,
        num_examples=40,
        image_size=(48, 64),
        crop_size=16,
        max_samples={"validation": 4},
    )
    assert capped.num_examples_in("validation") == 4
    assert capped.num_examples_in("test") == 6
    assert sum(b["images"].shape[0] for b in capped.validation(3)) == 8
    assert (
        pipelines.MultiObjectData(
            data_dir=tiny_data.data_dir, num_examples=40, image_size=(48, 64), max_samples=5
        ).num_examples_in("train")
        == 5
    )
    bad = pipelines.MultiObjectData(
        data_dir=tiny_data.data_dir, num_examples=40, image_size=(48, 64), max_samples={"val": 1}
    )
    with pytest.raises(ValueError, match="max_samples"):
        bad.num_examples_in("train")


def test_unprepared_deepmind_data_points_at_prepare_data(tmp_path):
    data = pipelines.MultiObjectData("multi_dsprites", "binarized", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError) as error:
        data.train(4)
    message = str(error.value)
    assert "osc-tf-prepare-data --dataset multi_dsprites --variant binarized" in message
    assert "multi_dsprites_binarized.tfrecords" in message and str(tmp_path) in message
    assert not data.has_vqa and data.num_background == 1 and data.num_entities == 4
    room = pipelines.MultiObjectData("objects_room", "train", data_dir=tmp_path)
    assert room.num_background == 4 and room.num_entities == 7


def test_synthetic_data_is_built_when_missing(tmp_path):
    data = pipelines.MultiObjectData(
        data_dir=tmp_path, num_examples=10, image_size=(24, 32), crop_size=16
    )
    assert not data.builder.is_prepared()
    assert next(iter(data.validation(2)))["images"].shape == (2, 16, 16, 3)  # 1 image
    assert data.builder.is_prepared() and data.num_examples_in("train") == 7
    assert data.has_vqa
    frozen = pipelines.MultiObjectData(
        data_dir=tmp_path / "other", num_examples=10, build_synthetic=False
    )
    with pytest.raises(FileNotFoundError, match="osc-tf-prepare-data --dataset synthetic"):
        frozen.prepare()


def test_deepmind_grayscale_dataset_through_the_pipelines(tmp_path):
    """multi_dsprites binarized: 1-channel images, E=4, visibility but no VQA."""
    from osc_tf.data import multi_object, tfds_builder

    rng = np.random.default_rng(0)
    examples = []
    for _ in range(20):
        labels = rng.integers(0, 3, (64, 64))  # entity 3 absent
        mask = (labels[None] == np.arange(4)[:, None, None]).astype(np.uint8)[..., None] * 255
        example = {
            k: rng.normal(size=(4,)).astype(np.float32)
            for k in ("x", "y", "shape", "orientation", "scale")
        }
        example.update(
            image=(labels[..., None] * 100).astype(np.uint8),
            mask=mask,
            color=rng.uniform(size=(4, 1)).astype(np.float32),
            visibility=np.array([1, 1, 0, 0], np.float32),  # entity 2 flagged invisible
        )
        examples.append(example)
    multi_object.write(
        tmp_path / "multi_dsprites_binarized.tfrecords", examples, "multi_dsprites", "binarized"
    )
    data = pipelines.MultiObjectData(
        "multi_dsprites", "binarized", data_dir=tmp_path / "tfds", crop_size=32
    )
    tfds_builder.prepare(data.builder, manual_dir=tmp_path)
    views = next(iter(data.train(batch_size=4)))["images"].numpy()
    assert views.shape == (8, 32, 32, 3)
    rgb = augment.denormalize(views).numpy()
    np.testing.assert_allclose(rgb[..., 0], rgb[..., 2], atol=0.02)  # gray stays gray-ish
    test = next(iter(data.test(batch_size=3)))
    assert "vqa" not in test and test["masks"].shape == (3, 4, 32, 32)
    for k in range(3):
        original = examples[17 + k]  # test = records 17..19
        masks = original["mask"][..., 0] > 0
        expected = masks[:, _nearest(64, 32)][:, :, _nearest(64, 32)]
        np.testing.assert_array_equal(test["masks"][k].numpy(), expected)
        np.testing.assert_array_equal(
            test["visibility"][k].numpy(), expected.any(axis=(1, 2)) & [True, True, False, False]
        )
        gray = original["image"][..., 0].astype(np.float32)
        resized = tf.image.resize(gray[..., None], [32, 32]).numpy()[..., 0]
        np.testing.assert_allclose(test["image_uint8"][k].numpy()[..., 1], resized, atol=0.51)


# ---------------------------------------------------------------- the original's test options


def _hand_example(with_visibility=True):
    """A 4×6 scene (centre square: columns 1-4) for 3×3 crops, E = 11.

    Entity 1 is column 0 (outside the crop), entity 2 pixel (2, 3) and entity 3
    pixel (1, 2), i.e. crop pixels (2, 2) and (1, 1); entity 4 is flagged visible
    but has no pixel; the background is the rest. Downsizing 4 -> 3 (half-pixel
    centres 0.17, 1.5, 2.83), nearest reads source rows 0, 2, 3 and bilinear blends
    rows {0, 1}, {1, 2}, {2, 3}: nearest keeps entity 2 at (1, 1) and loses entity
    3; bilinear keeps every output pixel any of whose sources is set.
    """
    labels = np.zeros((4, 6), np.int64)
    labels[:, 0] = 1
    labels[2, 3], labels[1, 2] = 2, 3
    stack = (labels[None] == np.arange(11)[:, None, None]).astype(np.uint8)[..., None] * 255
    present = np.array([0, 1, 1, 1, 1] + [0] * 6)  # entities 1..4 have attributes
    example = {
        "image": tf.zeros((4, 6, 3), tf.uint8),
        "segmentation": tf.zeros((4, 6, 1), tf.uint8),
        "mask_stack": tf.constant(stack),  # [E, 4, 6, 1]
        # (size, colour, material, shape) = (1, e, 1, 1) for entity e in 1..4
        "size": tf.constant(present),
        "color": tf.constant(present * np.arange(11)),
        "material": tf.constant(present),
        "shape": tf.constant(present),
    }
    if with_visibility:
        example["visibility"] = tf.constant([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0], tf.float32)
    return example


def _answers(entities):
    """VQA targets of objects (1, e, 1, 1): index ((0·8 + e−1)·2 + 0)·3 + 0."""
    vqa = np.zeros(96, np.float32)
    vqa[[(e - 1) * 6 for e in entities]] = 1
    return vqa


def _options(tiny_data, **kwargs):
    return pipelines.MultiObjectData(
        data_dir=tiny_data.data_dir, num_examples=40, image_size=(48, 64), crop_size=3, **kwargs
    )


def test_original_mask_resize_keeps_every_pixel_a_mask_reaches(tiny_data):
    one = np.zeros((3, 3), bool)
    one[1, 1] = True
    block, corner = np.zeros((3, 3), bool), np.zeros((3, 3), bool)
    block[1:, 1:] = corner[:2, :2] = True
    near = _options(tiny_data).test_example(_hand_example())
    np.testing.assert_array_equal(near["masks"][2], one)
    assert not near["masks"][3].numpy().any() and not near["masks"][1].numpy().any()
    np.testing.assert_array_equal(near["masks"][0], ~one)
    np.testing.assert_array_equal(near["visibility"][:5], [True, False, True, False, False])
    np.testing.assert_array_equal(near["vqa"], _answers([2]))
    original = _options(tiny_data, test_mask_resize="bilinear_nonzero")
    out = original.test_example(_hand_example())
    np.testing.assert_array_equal(out["masks"][2], block)
    np.testing.assert_array_equal(out["masks"][3], corner)
    assert out["masks"][0].numpy().all()  # the background overlaps both objects
    np.testing.assert_array_equal(out["visibility"][:5], [True, False, True, True, False])
    np.testing.assert_array_equal(out["vqa"], _answers([2, 3]))
    np.testing.assert_array_equal(out["image"], near["image"])


def test_full_image_visibility_keeps_objects_outside_the_crop(tiny_data):
    data = _options(tiny_data, test_visibility="image")
    out = data.test_example(_hand_example())
    # The dataset's flags: entities 0-4, whether in the crop (2), not (1) or without pixels (4).
    np.testing.assert_array_equal(out["visibility"], [True] * 5 + [False] * 6)
    np.testing.assert_array_equal(out["vqa"], _answers([1, 2, 3, 4]))
    assert not out["masks"][1].numpy().any()  # still no pixel in the crop
    # Without flags: a pixel anywhere in the full image.
    bare = data.test_example(_hand_example(with_visibility=False))
    np.testing.assert_array_equal(bare["visibility"], [True] * 4 + [False] * 7)
    np.testing.assert_array_equal(bare["vqa"], _answers([1, 2, 3]))


def test_full_image_visibility_on_the_tiny_dataset_is_the_scene_flags(tiny_data, tiny):
    data = pipelines.MultiObjectData(
        data_dir=tiny_data.data_dir,
        num_examples=tiny.num_examples,
        image_size=(tiny.height, tiny.width),
        crop_size=tiny.crop_size,
        test_visibility="image",
    )
    out = next(iter(data.test(batch_size=6)))
    config = synthetic.SceneConfig(tiny.height, tiny.width)
    for k in range(6):
        scene = synthetic.scene(34 + k, tiny.seed, config)
        np.testing.assert_array_equal(out["visibility"][k], scene["visibility"] > 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"test_visibility": "full"}, "test_visibility"), ({"test_mask_resize": "area"}, "mask")],
)
def test_test_options_reject_bad_values(tiny_data, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _options(tiny_data, **kwargs)
