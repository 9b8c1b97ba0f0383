"""Object-discovery metrics on hand-built masks with known answers and numpy oracles."""

from fractions import Fraction

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from osc_tf.evaluation.segmentation import (
    SegmentationMetrics,
    adjusted_rand_index,
    match_objects,
    otsu_masks,
    otsu_threshold,
    segmentation_metrics,
    upsample_attention,
)


def _one_hot_maps(labels: np.ndarray, depth: int) -> np.ndarray:
    """Integer label image(s) [B, S, S] -> one-hot maps [B, depth, S, S] float32."""
    return np.eye(depth, dtype=np.float32)[labels].transpose(0, 3, 1, 2)


def _attention(labels: np.ndarray, slots: int) -> np.ndarray:
    """A hard slot assignment per token [B, h, h] -> attention [B, K, N] (identity upsampling)."""
    maps = _one_hot_maps(labels, slots)
    return maps.reshape(maps.shape[0], slots, -1)


# ---------------------------------------------------------------- numpy oracles


def _ari_oracle(true: np.ndarray, pred: np.ndarray) -> float:
    """ARI from a contingency table (Hubert & Arabie); label -1 in ``true`` is ignored."""
    keep = true >= 0
    true, pred = true[keep], pred[keep]
    table = np.zeros((true.max(initial=0) + 1, pred.max(initial=0) + 1))
    np.add.at(table, (true, pred), 1)
    comb = lambda x: (x * (x - 1) / 2).sum()
    n = len(true)
    index, rows, cols = comb(table), comb(table.sum(1)), comb(table.sum(0))
    if n < 2 or (len(np.unique(true)) == len(np.unique(pred)) in (1, n)):
        return 1.0
    expected = rows * cols / (n * (n - 1) / 2)
    return (index - expected) / ((rows + cols) / 2 - expected)


def _otsu_oracle(x: np.ndarray, num_bins: int = 256) -> np.ndarray:
    """Exhaustive Otsu on one map: every split of the binned values, first best; bool mask."""
    lo, hi = x.min(), x.max()
    if lo == hi:
        return np.zeros_like(x, bool)
    edges = np.linspace(lo, hi, num_bins + 1)
    bins = np.clip(np.digitize(x.ravel(), edges) - 1, 0, num_bins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    values = centres[bins]
    best, best_var = 0, -1.0
    for i in range(num_bins - 1):
        low, high = values[bins <= i], values[bins > i]
        var = (
            0.0
            if not len(low) or not len(high)
            else (len(low) * len(high) * (low.mean() - high.mean()) ** 2)
        )
        if var > best_var * (1 + 1e-12):
            best, best_var = i, var
    return x > centres[best]


# ---------------------------------------------------------------- building blocks


def test_upsample_is_half_pixel_bilinear():
    attention = np.array([[[0.0, 1.0, 2.0, 3.0]]], np.float32)  # [1, 1, 4]: grid [[0, 1], [2, 3]]
    up = upsample_attention(attention, 4).numpy()[0, 0]
    row = np.array([0.0, 0.25, 0.75, 1.0])  # centres at -0.25, 0.25, 0.75, 1.25 (clamped)
    np.testing.assert_allclose(up, 2 * row[:, None] + row[None, :], atol=1e-6)
    assert upsample_attention(np.ones([2, 3, 16]), 8).shape == (2, 3, 8, 8)
    with pytest.raises(ValueError, match="square"):
        upsample_attention(np.ones([1, 1, 10]), 8)


def test_otsu_splits_a_bimodal_image_between_its_modes():
    rng = np.random.default_rng(0)
    high = rng.random((32, 32)) < 0.3
    image = np.where(high, rng.normal(0.8, 0.03, (32, 32)), rng.normal(0.2, 0.03, (32, 32)))
    threshold = otsu_threshold(image[None]).numpy()[0]
    assert image[~high].max() < threshold < image[high].min()
    np.testing.assert_array_equal(otsu_masks(image[None]).numpy()[0], high)


def test_otsu_equals_exhaustive_oracle_and_handles_constant_maps():
    rng = np.random.default_rng(1)
    maps = np.concatenate(
        [rng.random((4, 12, 12)), rng.gamma(2.0, size=(4, 12, 12)), np.full((1, 12, 12), 0.3)]
    )  # [9, 12, 12]
    got = otsu_masks(maps.reshape(3, 3, 12, 12)).numpy().reshape(9, 12, 12)
    for x, mask in zip(maps, got, strict=True):
        np.testing.assert_array_equal(mask, _otsu_oracle(x))
    assert not got[-1].any()  # a constant map has no foreground
    binary = np.zeros((1, 4, 4))
    binary[0, :2] = 1.0
    np.testing.assert_array_equal(otsu_masks(binary).numpy(), binary > 0)


@pytest.mark.parametrize("objects,slots", [(7, 4), (4, 7), (5, 5)])
def test_match_objects_is_optimal_for_more_or_fewer_slots(objects, slots):
    rng = np.random.default_rng(objects * 10 + slots)
    score = rng.random((6, objects, slots)).astype(np.float32)
    valid = rng.random((6, objects)) < 0.8
    got = match_objects(score, valid).numpy()
    for s, v, g in zip(score, valid, got, strict=True):
        assert np.all(g[~v] == -1)
        assert len(set(g[g >= 0].tolist())) == (g >= 0).sum() == min(v.sum(), slots)
        total = sum(s[e, k] for e, k in enumerate(g) if k >= 0)
        rows, cols = scipy.optimize.linear_sum_assignment(s[v], maximize=True)  # oracle
        assert total == pytest.approx(s[v][rows, cols].sum(), abs=1e-5)


def test_ari_equals_contingency_oracle_on_random_labelings():
    rng = np.random.default_rng(2)
    cases = [(5, 4), (1, 3), (3, 1), (1, 1), (11, 11), (2, 7)]
    for true_k, pred_k in cases:
        true = rng.integers(0, true_k, size=(3, 200))
        true[1, rng.random(200) < 0.4] = -1  # ignored pixels
        pred = rng.integers(0, pred_k, size=(3, 200))
        pred[2] = true[2].clip(0) % pred_k  # a correlated labeling
        true_masks = np.stack([true == e for e in range(true_k)], 1)  # [3, E, 200]
        pred_masks = np.stack([pred == k for k in range(pred_k)], 1)  # [3, K, 200]
        got = adjusted_rand_index(true_masks, pred_masks).numpy()
        want = [_ari_oracle(t, p) for t, p in zip(true, pred, strict=True)]
        np.testing.assert_allclose(got, want, atol=1e-12)


# ---------------------------------------------------------------- the metrics


def _scene():
    """4×4 scene with a hand-computed answer, P = 1 (upsampling is the identity).

    Entities: 0 background (8 px), 1 top-left 2×2, 2 bottom-right 2×2, 3 invisible.
    Slots: A = object 1 plus pixel (0, 2); B = object 2 without pixel (3, 3); C = the rest.
    """
    entity = np.zeros((4, 4), int)
    entity[:2, :2], entity[2:, 2:] = 1, 2
    slot = np.full((4, 4), 2)
    slot[:2, :2] = slot[0, 2] = 0
    slot[2:, 2:] = 1
    slot[3, 3] = 2
    masks = _one_hot_maps(entity[None], 4).astype(bool)
    visibility = np.array([[True, True, True, False]])
    return _attention(slot[None], 3), masks, visibility


def test_partial_overlap_hand_computed():
    attention, masks, visibility = _scene()
    out = segmentation_metrics(attention, masks, visibility)
    np.testing.assert_array_equal(out["slot"][0], [-1, 0, 1, -1])
    iou, dice = [4 / 5, 3 / 4], [8 / 9, 6 / 7]
    np.testing.assert_allclose(out["object_iou"][0], [0, *iou, 0], rtol=1e-6)
    np.testing.assert_allclose(out["iou"], [np.mean(iou)], rtol=1e-6)
    np.testing.assert_allclose(out["dice"], [np.mean(dice)], rtol=1e-6)
    np.testing.assert_allclose(out["soft_dice"], [np.mean(dice)], rtol=1e-6)  # maps are 0/1
    np.testing.assert_allclose(out["mbo"], [np.mean(iou)], rtol=1e-6)
    # FG contingency [[4, 0, 0], [0, 3, 1]]; with background add row [1, 0, 7].
    assert out["fg_ari"].numpy()[0] == pytest.approx(float(Fraction(24, 31)), abs=1e-12)
    assert out["ari"].numpy()[0] == pytest.approx(float(Fraction(14, 23)), abs=1e-12)


def test_perfect_segmentation_scores_one():
    rng = np.random.default_rng(3)
    entity = rng.integers(0, 6, size=(3, 8, 8))
    masks = _one_hot_maps(entity, 6).astype(bool)
    visibility = masks.any(axis=(2, 3))
    attention = _attention(entity, 6)
    out = segmentation_metrics(attention, masks, visibility)
    for key in ("iou", "dice", "soft_dice", "mbo", "fg_ari", "ari"):
        np.testing.assert_allclose(out[key], 1.0, rtol=1e-6, err_msg=key)
    # Patches of 2×2 pixels: bilinear upsampling keeps every pixel's argmax slot.
    coarse = rng.integers(0, 5, size=(2, 4, 4))
    fine = coarse.repeat(2, axis=1).repeat(2, axis=2)  # [2, 8, 8]
    masks = _one_hot_maps(fine, 5).astype(bool)
    out = segmentation_metrics(_attention(coarse, 5), masks, masks.any(axis=(2, 3)))
    for key in ("mbo", "fg_ari", "ari"):
        np.testing.assert_allclose(out[key], 1.0, rtol=1e-6, err_msg=key)


def test_pixel_masks_are_scored_as_given_or_resized():
    """A decoder's masks [B, K, R, R]: at the crop's size as they are, smaller ones resized."""
    rng = np.random.default_rng(4)
    entity = rng.integers(0, 6, size=(3, 8, 8))
    masks = _one_hot_maps(entity, 6).astype(bool)
    visibility = masks.any(axis=(2, 3))
    metrics = SegmentationMetrics()
    out = metrics.update(_one_hot_maps(entity, 6), masks, visibility)  # rank 4, R = S
    for key in ("iou", "dice", "soft_dice", "mbo", "fg_ari", "ari"):
        np.testing.assert_allclose(out[key], 1.0, rtol=1e-6, err_msg=key)
    coarse = rng.integers(0, 5, size=(2, 4, 4))
    fine = coarse.repeat(2, axis=1).repeat(2, axis=2)  # [2, 8, 8]
    masks = _one_hot_maps(fine, 5).astype(bool)
    out = SegmentationMetrics().update(_one_hot_maps(coarse, 5), masks, masks.any(axis=(2, 3)))
    for key in ("mbo", "fg_ari", "ari"):
        np.testing.assert_allclose(out[key], 1.0, rtol=1e-6, err_msg=key)
    # the same maps as attention over a 4x4 token grid score the same
    attention = SegmentationMetrics().update(_attention(coarse, 5), masks, masks.any(axis=(2, 3)))
    for key in ("iou", "dice", "mbo", "fg_ari"):
        np.testing.assert_allclose(out[key], attention[key], rtol=1e-6, err_msg=key)
    # after a rank-4 batch, the same metrics object still takes attention (one graph per rank)
    metrics.update(_attention(entity, 6), _one_hot_maps(entity, 6).astype(bool), visibility)
    assert metrics.result()["num_images"] == 6
    with pytest.raises(ValueError, match="attention \\[B, K, N\\] or masks"):
        metrics.update(np.ones([2, 8]), masks, visibility)


def test_no_nan_for_degenerate_images():
    entity = np.zeros((4, 4, 4), int)
    entity[0, 1:3, 1:3] = 1  # image 0: one object
    entity[1, :2], entity[1, 2:, :2], entity[1, 2:, 2:] = 1, 2, 3  # image 1: three objects
    # image 2: background only; image 3: entity 1 visible but with no pixel in the crop
    masks = _one_hot_maps(entity, 4).astype(bool)
    visibility = np.array([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]], bool)
    slot = np.zeros((4, 4, 4), int)
    slot[0, 1:3, 1:3] = 1  # exact; slot 2 is empty everywhere
    slot[1, :2] = 1  # two slots for three objects: object 1 exact, 2 and 3 share slot 0
    attention = _attention(slot, 3)
    attention[1, 2] = 0.0  # image 1, slot 2: a constant map (no Otsu foreground)
    out = {k: v.numpy() for k, v in segmentation_metrics(attention, masks, visibility).items()}
    for key in ("iou", "dice", "soft_dice", "mbo", "fg_ari", "ari"):
        assert np.isfinite(out[key]).all(), key
    np.testing.assert_array_equal(out["has_objects"], [True, True, False, False])
    np.testing.assert_array_equal(out["has_foreground"], [True, True, False, False])
    assert out["iou"][0] == out["mbo"][0] == out["fg_ari"][0] == 1.0
    # Image 1: slot 0 covers objects 2 and 3 (4 px each of 8): one gets 1/2, the other none.
    np.testing.assert_allclose(out["iou"][1], (1 + 0.5 + 0) / 3, rtol=1e-6)
    np.testing.assert_allclose(out["mbo"][1], (1 + 0.5 + 0.5) / 3, rtol=1e-6)
    assert out["fg_ari"][1] == pytest.approx(_ari_oracle(entity[1].ravel() - 1, slot[1].ravel()))
    assert out["iou"][2] == out["iou"][3] == 0.0  # reported, but excluded by has_objects


def test_streaming_equals_one_batch_and_skips_images_without_objects():
    rng = np.random.default_rng(4)
    entity = rng.integers(0, 5, size=(6, 8, 8))
    entity[2] = 0  # no objects
    masks = _one_hot_maps(entity, 5).astype(bool)
    visibility = masks.any(axis=(2, 3))
    attention = tf.nn.softmax(rng.normal(size=(6, 4, 16)) * 3, axis=1).numpy()
    whole = SegmentationMetrics()
    whole.update(attention, masks, visibility)
    parts = SegmentationMetrics()
    parts.update(attention[:3], masks[:3], visibility[:3])
    parts.update(attention[3:], masks[3:].astype(np.uint8), visibility[3:].astype(np.float32))
    got, want = parts.result(), whole.result()
    assert got.keys() == want.keys() and all(type(v) is float for v in got.values())
    for key in got:
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert want["num_images"] == 6 and want["num_images_with_objects"] == 5
    per_image = segmentation_metrics(attention, masks, visibility)
    keep = np.arange(6) != 2
    assert want["iou"] == pytest.approx(per_image["iou"].numpy()[keep].mean(), rel=1e-6)
    assert want["ari"] == pytest.approx(per_image["ari"].numpy().mean(), rel=1e-9)
    empty = SegmentationMetrics()
    empty.update(attention[:3], np.repeat(masks[2:3], 3, 0), np.repeat(visibility[2:3], 3, 0))
    result = empty.result()
    assert np.isnan(result["iou"]) and np.isnan(result["fg_ari"]) and result["num_images"] == 3
    assert result["num_images_with_objects"] == result["num_objects"] == 0


def test_match_background_gives_the_background_a_slot():
    attention, masks, visibility = _scene()
    attention = attention[:, [0, 2]]  # slots A and C only
    # Objects only: object 1 -> A (4/5), object 2 -> C (1/11).
    out = segmentation_metrics(attention, masks, visibility)
    np.testing.assert_array_equal(out["slot"][0], [-1, 0, 1, -1])
    np.testing.assert_allclose(out["iou"], [(4 / 5 + 1 / 11) / 2], rtol=1e-6)
    # The background (IoU 7/9 with C) takes C from object 2; it is not in the mean.
    out = segmentation_metrics(attention, masks, visibility, match_background=True)
    np.testing.assert_array_equal(out["slot"][0], [-1, 0, -1, -1])
    np.testing.assert_allclose(out["iou"], [(4 / 5 + 0) / 2], rtol=1e-6)


def test_graph_with_unknown_shapes_equals_eager():
    attention, masks, visibility = _scene()
    graph = tf.function(
        segmentation_metrics,
        input_signature=[
            tf.TensorSpec([None, None, None], tf.float32),
            tf.TensorSpec([None, None, None, None], tf.bool),
            tf.TensorSpec([None, None], tf.bool),
        ],
    )
    got, want = (
        graph(attention, masks, visibility),
        segmentation_metrics(attention, masks, visibility),
    )
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


# ---------------------------------------------------------------- the original's protocol


def test_nearest_upsampling_takes_pytorchs_source_patch():
    attention = np.array([[[0.0, 1.0, 2.0, 3.0]]], np.float32)  # grid [[0, 1], [2, 3]]
    up = upsample_attention(attention, 4, method="nearest").numpy()[0, 0]
    np.testing.assert_array_equal(up, [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    # S not a multiple of h: pixel i takes patch floor(i · h / S) (rows 0, 0, 1), where
    # TensorFlow's half-pixel nearest would take rows 0, 1, 1.
    up = upsample_attention(attention, 3, method="nearest").numpy()[0, 0]
    np.testing.assert_array_equal(up, [[0, 0, 1], [0, 0, 1], [2, 2, 3]])
    up = upsample_attention(attention, 5, method="nearest").numpy()[0, 0]
    np.testing.assert_array_equal(up[:, 0], [0, 0, 0, 2, 2])
    with pytest.raises(ValueError, match="upsampling must be one of"):
        upsample_attention(attention, 4, method="bicubic")


def _centre_patch_scene():
    """A 3×3 patch grid on a 4×4 crop: slot 0 attends to the centre patch only, slot 1
    to the rest; the one object is pixel (2, 2), the rest is background.

    Nearest (rows 0, 0, 1, 2) maps the centre patch to pixel (2, 2) alone: IoU 1.
    Bilinear spreads it over the 2×2 centre block (value 0.625² there, 0 elsewhere):
    Otsu keeps the block, IoU 1/4, Dice 2/5.
    """
    centre = np.zeros((3, 3), np.float32)
    centre[1, 1] = 1.0
    attention = np.stack([centre.ravel(), 1.0 - centre.ravel()])[None]  # [1, 2, 9]
    obj = np.zeros((4, 4), bool)
    obj[2, 2] = True
    masks = np.stack([~obj, obj])[None]  # [1, 2, 4, 4]
    return attention, masks, np.array([[True, True]])


def test_nearest_and_bilinear_upsampling_score_differently():
    attention, masks, visibility = _centre_patch_scene()
    near = segmentation_metrics(attention, masks, visibility, upsampling="nearest")
    np.testing.assert_array_equal(near["binary_masks"][0, 0], masks[0, 1])
    assert near["iou"].numpy()[0] == near["dice"].numpy()[0] == 1.0
    bilinear = segmentation_metrics(attention, masks, visibility)  # the default
    block = np.zeros((4, 4), bool)
    block[1:3, 1:3] = True
    np.testing.assert_array_equal(bilinear["binary_masks"][0, 0], block)
    np.testing.assert_allclose(bilinear["soft_masks"][0, 0][1:3, 1:3], 0.625**2, rtol=1e-6)
    np.testing.assert_allclose(bilinear["iou"], [1 / 4], rtol=1e-6)
    np.testing.assert_allclose(bilinear["dice"], [2 / 5], rtol=1e-6)
    metrics = SegmentationMetrics(upsampling="nearest")
    metrics.update(attention, masks, visibility)
    assert metrics.result()["iou"] == 1.0


def test_visible_objects_without_pixels_count_as_zero():
    attention, masks, visibility = _scene()
    visibility = np.array([[True, True, True, True]])  # entity 3: visible, no pixel in the crop
    default = segmentation_metrics(attention, masks, visibility)
    np.testing.assert_array_equal(default["objects"][0], [False, True, True, False])
    np.testing.assert_allclose(default["iou"], [(4 / 5 + 3 / 4) / 2], rtol=1e-6)
    out = segmentation_metrics(attention, masks, visibility, objects="visible")
    np.testing.assert_array_equal(out["objects"][0], [False, True, True, True])
    np.testing.assert_allclose(out["object_iou"][0], [0, 4 / 5, 3 / 4, 0], rtol=1e-6)
    np.testing.assert_allclose(out["iou"], [(4 / 5 + 3 / 4 + 0) / 3], rtol=1e-6)
    np.testing.assert_allclose(out["dice"], [(8 / 9 + 6 / 7 + 0) / 3], rtol=1e-6)
    np.testing.assert_allclose(out["mbo"], [(4 / 5 + 3 / 4 + 0) / 3], rtol=1e-6)
    # An image whose only visible object has no pixel now counts, with IoU 0.
    lonely = np.array([[True, False, False, True]])
    out = segmentation_metrics(attention, masks, lonely, objects="visible")
    assert out["has_objects"].numpy()[0] and out["iou"].numpy()[0] == 0.0
    assert not segmentation_metrics(attention, masks, lonely)["has_objects"].numpy()[0]
    with pytest.raises(ValueError, match="objects must be one of"):
        segmentation_metrics(attention, masks, lonely, objects="all")


def test_soft_dice_of_unnormalised_maps():
    attention, masks, visibility = _scene()
    attention = 0.5 * attention  # maps 0 / 0.5: Otsu and min-max normalisation are unchanged
    out = segmentation_metrics(attention, masks, visibility)
    np.testing.assert_allclose(out["soft_dice"], [(8 / 9 + 6 / 7) / 2], rtol=1e-6)
    # As they are: object 1 (4 px) with slot A (5 px × 0.5, 4 shared): 2·2 / (4 + 2.5);
    # object 2 (4 px) with slot B (3 px × 0.5, all shared): 2·1.5 / (4 + 1.5).
    raw = segmentation_metrics(attention, masks, visibility, soft_dice_normalization="none")
    np.testing.assert_allclose(raw["soft_dice"], [(8 / 13 + 6 / 11) / 2], rtol=1e-6)
    np.testing.assert_allclose(raw["iou"], out["iou"], rtol=1e-6)
    with pytest.raises(ValueError, match="soft_dice_normalization must be one of"):
        SegmentationMetrics(soft_dice_normalization="sum")


def test_background_slot_is_reported_for_figures():
    attention, masks, visibility = _scene()
    attention = attention[:, [0, 2]]  # slots A and C; the background takes C when matched
    assert segmentation_metrics(attention, masks, visibility)["background_slot"].numpy() == [-1]
    out = segmentation_metrics(attention, masks, visibility, match_background=True)
    assert out["background_slot"].numpy() == [1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"upsampling": "area"}, "upsampling"),
        ({"objects": "crop"}, "objects"),
        ({"soft_dice_normalization": None}, "soft_dice_normalization"),
        ({"num_bins": 1}, "num_bins"),
        ({"match_background": "yes"}, "match_background"),
    ],
)
def test_segmentation_metrics_reject_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SegmentationMetrics(**kwargs)


def _original_scores(attention, masks, visibility, patch):
    """The original study's test scoring restated in numpy (``run_test_segmentation``):
    nearest upsampling, Otsu masks, IoU and soft Dice of the maps as they are over every
    entity, background included, each matched by its own Hungarian assignment; per image
    the mean over the visible entities after the background, then over images."""
    b, k, n = attention.shape
    h = int(np.sqrt(n))
    maps = attention.reshape(b, k, h, h).repeat(patch, axis=2).repeat(patch, axis=3)
    binary = np.stack([[_otsu_oracle(m) for m in per_image] for per_image in maps])
    true = masks.reshape(b, masks.shape[1], 1, -1).astype(np.float64)
    pred = binary.reshape(b, 1, k, -1).astype(np.float64)
    soft = maps.reshape(b, 1, k, -1).astype(np.float64)
    inter = (true * pred).sum(-1)
    iou = inter / np.maximum(true.sum(-1) + pred.sum(-1) - inter, 1e-8)  # [B, T, K]
    dice = 2 * (true * soft).sum(-1) / np.maximum(true.sum(-1) + soft.sum(-1), 1e-8)
    means = {}
    for name, score in (("iou", iou), ("soft_dice", dice)):
        per_image = []
        for i in range(b):
            rows, cols = scipy.optimize.linear_sum_assignment(score[i], maximize=True)
            value = score[i][rows, cols][np.argsort(rows)]  # [T]
            per_image.append(value[visibility[i]][1:].mean())  # background visible first
        means[name] = float(np.mean(per_image))
    return means


def test_original_options_reproduce_the_original_scoring():
    rng = np.random.default_rng(5)
    b, e, k, h, patch = 6, 5, 6, 4, 4
    attention = tf.nn.softmax(rng.normal(size=(b, k, h * h)) * 3, axis=1).numpy()
    masks = rng.random((b, e, h * patch, h * patch)) < 0.3  # overlapping, like resized masks
    masks[:, 4] = False  # an entity without pixels ...
    visibility = rng.random((b, e)) < 0.8
    visibility[:, 0] = True  # (the background is visible in CLEVR)
    visibility[:, 1] = visibility[:, 4] = True  # ... that is visible: it scores 0
    metrics = SegmentationMetrics(
        upsampling="nearest",
        match_background=True,
        objects="visible",
        soft_dice_normalization="none",
    )
    metrics.update(attention, masks, visibility)
    got = metrics.result()
    want = _original_scores(attention, masks, visibility, patch)
    assert got["iou"] == pytest.approx(want["iou"], rel=1e-5)
    assert got["soft_dice"] == pytest.approx(want["soft_dice"], rel=1e-5)
    assert got["num_objects"] == (visibility[:, 1:]).sum()
