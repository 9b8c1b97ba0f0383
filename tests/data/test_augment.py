"""Two-view augmentation: seeds, crop boxes, colour matrix, layout, eager vs Dataset.map."""

import colorsys

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.data import augment

MEAN, STD = np.array(augment.IMAGENET_MEAN), np.array(augment.IMAGENET_STD)
NO_JITTER = dict(flip=0.0, brightness=0.0, saturation=(1.0, 1.0), hue=0.0)


def _seeds(n, first=0):
    return tf.stack([tf.fill([n], tf.constant(first, tf.int64)), tf.range(n, dtype=tf.int64)], 1)


def _params(aug, n, height=120, width=160):
    draws = aug.draw(_seeds(n))  # [n, 2, D]
    return {k: v.numpy() for k, v in aug.params(draws, height, width).items()}  # [n, 2, ...]


def test_hash_uniforms_are_uniform_and_pure():
    u = augment.hash_uniform(_seeds(4000), 8).numpy()
    assert u.shape == (4000, 8) and u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.std() - np.sqrt(1 / 12)) < 0.01
    counts = np.histogram(u, bins=10, range=(0, 1))[0]
    assert counts.min() > 0.9 * u.size / 10
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.05  # neighbouring seeds
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.05  # neighbouring counters
    np.testing.assert_array_equal(augment.hash_uniform(_seeds(4000), 8).numpy(), u)
    other = augment.hash_uniform(_seeds(4000, first=1), 8).numpy()
    assert np.mean(other == u) < 0.01
    negative = augment.hash_uniform(tf.constant([[-5, 2**40]], tf.int64), 3).numpy()
    assert negative.shape == (1, 3) and np.all((negative >= 0) & (negative < 1))


def test_crop_boxes_respect_scale_and_ratio():
    aug = augment.TwoViewAugment(flip=0.0)
    boxes = _params(aug, 1000)["boxes"].reshape(-1, 4)
    assert np.all((boxes >= 0) & (boxes <= 1 + 1e-6))
    crop_h = (boxes[:, 2] - boxes[:, 0]) * 119 + 1  # boxes span pixel centres
    crop_w = (boxes[:, 3] - boxes[:, 1]) * 159 + 1
    area = crop_h * crop_w / (120 * 160)
    assert area.min() > 0.3 - 0.01 and area.max() <= 1.0 + 1e-4
    aspect = crop_w / crop_h
    assert aspect.min() > 0.75 - 0.02 and aspect.max() < 4 / 3 + 0.02
    assert area.std() > 0.1  # actually random


def test_flip_probability_and_fallback_box():
    flipped = _params(augment.TwoViewAugment(flip=0.5), 1000)["boxes"]
    frac = np.mean(flipped[..., 1] > flipped[..., 3])
    assert 0.45 < frac < 0.55
    always = _params(augment.TwoViewAugment(flip=1.0), 50)["boxes"]
    assert np.all(always[..., 1] > always[..., 3])
    # No box of >= 95 % area with aspect 2 fits 120x160: torchvision's centre crop
    # of 160x80 (aspect clamped to 2) at row 20.
    impossible = augment.TwoViewAugment(scale=(0.95, 1.0), ratio=(2.0, 2.0), flip=0.0)
    boxes = _params(impossible, 5)["boxes"]
    np.testing.assert_allclose(
        boxes, np.broadcast_to([20 / 119, 0.0, 99 / 119, 1.0], boxes.shape), atol=1e-6
    )


def test_crop_and_resize_matches_tensorflow():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (3, 30, 40, 3)), tf.uint8)
    y1, x1 = rng.uniform(0, 0.5, (2, 8))
    y2, x2 = rng.uniform(0.5, 1, (2, 8))
    boxes = np.stack([y1, x1, y2, x2], 1).astype(np.float32)
    boxes[::2, [1, 3]] = boxes[::2, [3, 1]]  # flipped boxes too
    indices = tf.constant(rng.integers(0, 3, 8), tf.int32)
    ours = augment.crop_and_resize(images, boxes, indices, 16)
    theirs = tf.image.crop_and_resize(images, boxes, indices, [16, 16])
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=0.02)  # of 255


def test_colour_matrix_saturation_and_hue():
    aug = augment.TwoViewAugment()

    def matrix(saturation, hue, grayscale=False):
        p = {
            "saturation": tf.constant([saturation]),
            "hue": tf.constant([hue]),
            "grayscale": tf.constant([grayscale]),
        }
        return aug.colour_matrix(p).numpy()[0]

    np.testing.assert_allclose(matrix(1.0, 0.0), np.eye(3), atol=1e-6)
    rgb = np.random.default_rng(0).uniform(0, 1, (100, 3)).astype(np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    gray = rgb @ matrix(0.0, 0.0)
    np.testing.assert_allclose(gray, np.repeat(luma[:, None], 3, 1), atol=1e-5)
    np.testing.assert_allclose((rgb @ matrix(1.0, 0.2)) @ [0.299, 0.587, 0.114], luma, atol=1e-5)
    np.testing.assert_allclose(rgb @ matrix(0.9, 0.0, grayscale=True), gray, atol=1e-5)
    for colour in ([0.8, 0.2, 0.2], [0.2, 0.7, 0.3], [0.25, 0.3, 0.8]):
        h0 = colorsys.rgb_to_hsv(*colour)[0]
        h1 = colorsys.rgb_to_hsv(*np.clip(np.array(colour) @ matrix(1.0, 0.05), 0, 1))[0]
        assert 0.02 < (h1 - h0) % 1.0 < 0.08  # about +0.05 turn, HSV's direction


def test_identity_recipe_is_a_normalised_resize():
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (2, 120, 160, 3)), tf.uint8)
    aug = augment.TwoViewAugment(scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3), **NO_JITTER)
    out = aug(images, _seeds(2), 64).numpy()
    full = tf.image.crop_and_resize(images, [[0, 0, 1, 1]] * 2, [0, 1], [64, 64]).numpy()
    expected = (full / 255.0 - MEAN) / STD
    np.testing.assert_allclose(out, np.concatenate([expected, expected]), atol=1e-4)


def test_rows_are_view0_then_view1_of_the_same_images():
    b = 5
    values = np.arange(1, b + 1) * 40  # image i is constant gray 40 * (i + 1)
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (b, 60, 80, 3)), tf.uint8)
    aug = augment.TwoViewAugment(**NO_JITTER | {"flip": 0.5})
    out = augment.denormalize(aug(images, _seeds(b), 16)).numpy() * 255
    expected = np.concatenate([values, values]).astype(float)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), expected, atol=0.05)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 0, atol=0.05)


def test_brightness_delta_is_additive_and_clipped():
    images = tf.fill([4, 30, 40, 3], tf.constant(128, tf.uint8))
    aug = augment.TwoViewAugment(brightness=0.6, flip=0.0, saturation=(1.0, 1.0), hue=0.0)
    out = augment.denormalize(aug(images, _seeds(4), 8)).numpy()  # [8, 8, 8, 3]
    delta = _params(aug, 4, 30, 40)["brightness"]  # [4, 2]
    expected = np.clip(128 / 255 + np.concatenate([delta[:, 0], delta[:, 1]]), 0, 1)
    np.testing.assert_allclose(out[:, 0, 0, 0], expected, atol=1e-5)
    assert np.abs(delta).max() > 0.3 and np.abs(delta).max() <= 0.6


def test_views_differ_and_stay_in_range():
    images = tf.constant(np.random.default_rng(2).integers(0, 256, (4, 60, 80, 3)), tf.uint8)
    out = augment.TwoViewAugment()(images, _seeds(4), 32).numpy()
    assert out.shape == (8, 32, 32, 3) and out.dtype == np.float32
    lo, hi = -MEAN / STD, (1 - MEAN) / STD
    assert np.all(out >= lo - 1e-5) and np.all(out <= hi + 1e-5)
    assert np.abs(out[:4] - out[4:]).mean() > 0.1


def test_eager_equals_dataset_map_and_xla_equals_plain():
    images = np.random.default_rng(3).integers(0, 256, (6, 48, 64, 3)).astype(np.uint8)
    seeds = _seeds(6)
    aug = augment.TwoViewAugment(grayscale=0.3)
    eager = aug(tf.constant(images), seeds, 24).numpy()
    ds = tf.data.Dataset.from_tensor_slices((images, seeds)).batch(6)
    mapped = next(iter(ds.map(lambda im, s: aug(im, s, 24)))).numpy()
    np.testing.assert_allclose(mapped, eager, atol=1e-5)
    plain = augment.TwoViewAugment(grayscale=0.3, jit_compile=False)(tf.constant(images), seeds, 24)
    np.testing.assert_allclose(plain.numpy(), eager, atol=1e-3)


def test_optional_grayscale_solarize_blur():
    rng = np.random.default_rng(4)
    images = tf.constant(rng.integers(0, 256, (3, 40, 40, 3)), tf.uint8)
    gray = augment.denormalize(augment.TwoViewAugment(grayscale=1.0)(images, _seeds(3), 16))
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-5)
    bright = tf.fill([2, 20, 20, 3], tf.constant(204, tf.uint8))  # 0.8
    solar = augment.TwoViewAugment(solarize=1.0, **NO_JITTER)(bright, _seeds(2), 8)
    np.testing.assert_allclose(augment.denormalize(solar).numpy(), 0.2, atol=1e-5)
    checker = np.indices((40, 40)).sum(0) % 2 * 255
    board = tf.constant(np.broadcast_to(checker[None, :, :, None], (2, 40, 40, 3)), tf.uint8)
    sharp_aug = augment.TwoViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), **NO_JITTER)
    blur_aug = augment.TwoViewAugment(
        scale=(1.0, 1.0), ratio=(1.0, 1.0), blur=1.0, blur_sigma=(1.5, 2.0), **NO_JITTER
    )
    sharp = augment.denormalize(sharp_aug(board, _seeds(2), 40)).numpy()
    blurred = augment.denormalize(blur_aug(board, _seeds(2), 40)).numpy()
    assert blurred.std() < 0.2 * sharp.std()
    np.testing.assert_allclose(blurred.mean(), sharp.mean(), atol=0.01)


def test_grayscale_input_and_denormalize():
    images = tf.constant(np.random.default_rng(5).integers(0, 256, (2, 30, 30, 1)), tf.uint8)
    out = augment.TwoViewAugment(**NO_JITTER)(images, _seeds(2), 12)
    assert out.shape == (4, 12, 12, 3)
    rgb = augment.denormalize(out).numpy()
    np.testing.assert_allclose(rgb[..., 0], rgb[..., 1], atol=1e-5)
    x = np.random.default_rng(6).uniform(0, 1, (5, 3)).astype(np.float32)
    np.testing.assert_allclose(augment.denormalize(augment.normalize(x)).numpy(), x, atol=1e-6)


def test_invalid_ranges_fail():
    with pytest.raises(ValueError, match="scale"):
        augment.TwoViewAugment(scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="ratio"):
        augment.TwoViewAugment(ratio=(2.0, 1.0))
