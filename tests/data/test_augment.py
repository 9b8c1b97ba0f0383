"""Two-view augmentation: seeds, crop boxes, colour ops against tf.image, layout, eager vs map."""

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.data import augment

MEAN, STD = np.array(augment.IMAGENET_MEAN), np.array(augment.IMAGENET_STD)
NO_JITTER = dict(flip=0.0, brightness=0.0, saturation=(1.0, 1.0), hue=0.0)


def _unnormalize(images):
    """Normalised images back to their values before normalisation (not clipped)."""
    return np.asarray(images) * STD + MEAN


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
    # The original's corners are uniform in [0, size - crop + 1): up to one pixel out.
    assert np.all(boxes >= 0)
    assert np.all((boxes[:, 2] <= 1 + 1 / 120) & (boxes[:, 3] <= 1 + 1 / 160))
    crop_h = (boxes[:, 2] - boxes[:, 0]) * 120  # normalised by the size, as the original
    crop_w = (boxes[:, 3] - boxes[:, 1]) * 160
    area = crop_h * crop_w / (120 * 160)
    assert area.min() > 0.3 - 1e-4 and area.max() <= 1.0 + 1e-4
    aspect = crop_w / crop_h
    assert aspect.min() > 0.75 - 1e-4 and aspect.max() < 4 / 3 + 1e-4
    assert area.std() > 0.1  # actually random
    assert np.mean(boxes[:, 2] > 1) > 0.001  # the original's one-pixel overshoot happens


def test_flip_probability_and_fallback_box():
    flipped = _params(augment.TwoViewAugment(flip=0.5), 1000)["boxes"]
    frac = np.mean(flipped[..., 1] > flipped[..., 3])
    assert 0.45 < frac < 0.55
    always = _params(augment.TwoViewAugment(flip=1.0), 50)["boxes"]
    assert np.all(always[..., 1] > always[..., 3])
    # No box of >= 95 % area with aspect 2 fits 120x160: the original's first
    # fallback, a centre crop of height W / 2 = 80 from row 20, is valid.
    impossible = augment.TwoViewAugment(scale=(0.95, 1.0), ratio=(2.0, 2.0), flip=0.0)
    boxes = _params(impossible, 5)["boxes"]
    np.testing.assert_allclose(
        boxes, np.broadcast_to([20 / 120, 0.0, 100 / 120, 1.0], boxes.shape), atol=1e-6
    )
    # The same on a square image: height W / 2 = 50 from row 25.
    boxes = _params(impossible, 5, 100, 100)["boxes"]
    np.testing.assert_allclose(boxes, np.broadcast_to([0.25, 0, 0.75, 1], boxes.shape), atol=1e-6)
    # Too tall for the first fallback: the second, the original's right-hand strip of
    # width H / 4 (not centred).
    tall = augment.TwoViewAugment(scale=(0.95, 1.0), ratio=(0.25, 0.25), flip=0.0)
    boxes = _params(tall, 5, 100, 100)["boxes"]
    np.testing.assert_allclose(boxes, np.broadcast_to([0, 0.75, 1, 1], boxes.shape), atol=1e-6)


def test_crop_and_resize_matches_tensorflow():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (3, 30, 40, 3)), tf.uint8)
    y1, x1 = rng.uniform(0, 0.5, (2, 8))
    y2, x2 = rng.uniform(0.5, 1.04, (2, 8))  # some boxes reach past the border
    boxes = np.stack([y1, x1, y2, x2], 1).astype(np.float32)
    boxes[::2, [1, 3]] = boxes[::2, [3, 1]]  # flipped boxes too
    indices = tf.constant(rng.integers(0, 3, 8), tf.int32)
    theirs = tf.image.crop_and_resize(images, boxes, indices, [16, 16]).numpy()
    assert np.sum(theirs == 0) > 16  # samples outside the image are 0
    for crop in (augment.crop_and_resize, augment._crop_xla):
        ours = crop(images, boxes, indices, 16)
        np.testing.assert_allclose(ours.numpy(), theirs, atol=0.02)  # of 255


def _jittered_images(n=6, size=12):
    """Values in [-0.2, 1.2] (brightness pushes the original's values out of [0, 1])."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-0.2, 1.2, (n, size, size, 3)).astype(np.float32)
    x[0] = rng.uniform(0, 1, (size, size, 3))
    x[1] = 0.5  # gray
    x[2, ..., 0] = x[2, ..., 1]  # ties between channels
    x[3, ..., 2] = x[3, ..., 0]
    return x


@pytest.mark.parametrize("xla", [False, True])
def test_colour_ops_equal_tf_image_per_image(xla):
    x = _jittered_images()
    rng = np.random.default_rng(8)
    factors = rng.uniform(0.0, 1.5, len(x)).astype(np.float32)
    deltas = rng.uniform(-0.5, 0.5, len(x)).astype(np.float32)
    wrap = (lambda f: tf.function(f, jit_compile=True)) if xla else (lambda f: f)
    saturated = wrap(augment.adjust_saturation)(x, factors).numpy()
    turned = wrap(augment.adjust_hue)(x, deltas).numpy()
    for i in range(len(x)):
        want = tf.image.adjust_saturation(x[i], factors[i]).numpy()
        np.testing.assert_allclose(saturated[i], want, atol=2e-6, err_msg=f"saturation {i}")
        want = tf.image.adjust_hue(x[i], deltas[i]).numpy()
        np.testing.assert_allclose(turned[i], want, atol=2e-6, err_msg=f"hue {i}")


def test_colour_jitter_is_the_original_sequence():
    """brightness -> adjust_saturation -> adjust_hue, per view, nothing clipped."""
    images = tf.constant(np.random.default_rng(9).integers(0, 256, (3, 40, 40, 3)), tf.uint8)
    aug = augment.TwoViewAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0, brightness=0.4)
    out = _unnormalize(aug(images, _seeds(3), 40))
    p = _params(aug, 3, 40, 40)
    boxes = np.concatenate([p["boxes"][:, 0], p["boxes"][:, 1]])  # view-major
    crops = tf.image.crop_and_resize(images, boxes, [0, 1, 2] * 2, [40, 40]).numpy() / 255.0
    for i in range(6):
        view, image = (i // 3, i % 3)
        x = tf.constant(crops[i] + p["brightness"][image, view], tf.float32)
        x = tf.image.adjust_saturation(x, p["saturation"][image, view])
        x = tf.image.adjust_hue(x, p["hue"][image, view]).numpy()
        np.testing.assert_allclose(out[i], x, atol=1e-4, err_msg=f"view {i}")
    assert out.max() > 1.0 or out.min() < 0.0  # not clipped


def test_without_jitter_a_view_is_a_normalised_crop_and_resize():
    images = tf.constant(np.random.default_rng(1).integers(0, 256, (2, 120, 160, 3)), tf.uint8)
    aug = augment.TwoViewAugment(**NO_JITTER)
    out = aug(images, _seeds(2), 64).numpy()
    p = _params(aug, 2)
    boxes = np.concatenate([p["boxes"][:, 0], p["boxes"][:, 1]])  # view-major
    crops = tf.image.crop_and_resize(images, boxes, [0, 1, 0, 1], [64, 64]).numpy()
    np.testing.assert_allclose(out, (crops / 255.0 - MEAN) / STD, atol=1e-4)


def test_rows_are_view0_then_view1_of_the_same_images():
    b = 5
    values = np.arange(1, b + 1) * 40  # image i is constant gray 40 * (i + 1)
    images = tf.constant(np.broadcast_to(values[:, None, None, None], (b, 60, 80, 3)), tf.uint8)
    aug = augment.TwoViewAugment(**NO_JITTER | {"flip": 0.5})
    out = augment.denormalize(aug(images, _seeds(b), 16)).numpy() * 255
    expected = np.concatenate([values, values]).astype(float)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), expected, atol=0.05)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 0, atol=0.05)


def test_brightness_delta_is_additive_and_not_clipped():
    images = tf.fill([4, 30, 40, 3], tf.constant(128, tf.uint8))
    aug = augment.TwoViewAugment(brightness=0.6, flip=0.0, saturation=(1.0, 1.0), hue=0.0)
    out = _unnormalize(aug(images, _seeds(4), 8))  # [8, 8, 8, 3]
    delta = _params(aug, 4, 30, 40)["brightness"]  # [4, 2]
    expected = 128 / 255 + np.concatenate([delta[:, 0], delta[:, 1]])
    np.testing.assert_allclose(out[:, 0, 0, 0], expected, atol=1e-5)
    assert np.abs(delta).max() > 0.3 and np.abs(delta).max() <= 0.6


def test_views_differ():
    images = tf.constant(np.random.default_rng(2).integers(0, 256, (4, 60, 80, 3)), tf.uint8)
    out = augment.TwoViewAugment()(images, _seeds(4), 32).numpy()
    assert out.shape == (8, 32, 32, 3) and out.dtype == np.float32
    assert np.all(np.isfinite(out))
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
    # (the last row and column may sample one pixel past the border, as the original: 0)
    np.testing.assert_allclose(augment.denormalize(solar).numpy()[:, :-1, :-1], 0.2, atol=1e-5)
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
