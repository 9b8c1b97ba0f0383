"""Synthetic CLEVR-like scenes: determinism, layout, exact visible masks, attributes."""

import numpy as np
import pytest

from osc_tf.data import synthetic

CONFIG = synthetic.SceneConfig(60, 80)
SCENES = [synthetic.scene(i, seed=7, config=CONFIG) for i in range(20)]


def _labels(scene):
    return scene["mask"][..., 0].argmax(axis=0)  # [H, W]


def test_a_scene_is_a_pure_function_of_seed_and_index():
    again = synthetic.scene(3, seed=7, config=CONFIG)
    for key, value in SCENES[3].items():
        np.testing.assert_array_equal(again[key], value)
    assert not np.array_equal(SCENES[3]["image"], SCENES[4]["image"])
    assert not np.array_equal(
        SCENES[3]["image"], synthetic.scene(3, seed=8, config=CONFIG)["image"]
    )
    streamed = list(synthetic.scenes(2, seed=7, start=3, config=CONFIG))
    np.testing.assert_array_equal(streamed[1]["mask"], SCENES[4]["mask"])


def test_layout_follows_clevr_with_masks():
    e, h, w = synthetic.NUM_ENTITIES, 60, 80
    expected = {
        "image": ((h, w, 3), np.uint8),
        "mask": ((e, h, w, 1), np.uint8),
        "visibility": ((e,), np.float32),
        "x": ((e,), np.float32),
        "y": ((e,), np.float32),
        "z": ((e,), np.float32),
        "rotation": ((e,), np.float32),
        "pixel_coords": ((e, 3), np.float32),
        "size": ((e,), np.uint8),
        "material": ((e,), np.uint8),
        "shape": ((e,), np.uint8),
        "color": ((e,), np.uint8),
    }
    for scene in SCENES:
        assert {k: (v.shape, v.dtype) for k, v in scene.items()} == expected


def test_masks_partition_the_image_and_absent_entities_are_empty():
    for scene in SCENES:
        mask = scene["mask"][..., 0]
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask.astype(int).sum(axis=0), 255)  # one owner per pixel
        n = int(scene["visibility"].sum()) - 1  # objects (entity 0 is the background)
        assert 3 <= n <= 10
        np.testing.assert_array_equal(scene["visibility"], [1.0] * (n + 1) + [0.0] * (10 - n))
        area = (mask > 0).sum(axis=(1, 2))
        assert area[0] > 0 and np.all(area[1 : n + 1] >= 5)  # 0.1 % of 60x80 pixels
        assert np.all(area[n + 1 :] == 0)
        for key in ("size", "material", "shape", "color", "x", "y", "z", "rotation"):
            assert scene[key][0] == 0 and np.all(scene[key][n + 1 :] == 0), key
        assert np.all(scene["pixel_coords"][n + 1 :] == 0)


def test_attribute_codes_use_the_clevr_vocabulary():
    codes = {
        k: np.concatenate([s[k][s["visibility"] > 0][1:] for s in SCENES])
        for k in ("size", "material", "shape", "color")
    }
    assert set(codes["size"]) == {1, 2}
    assert set(codes["material"]) == {1, 2}
    assert set(codes["shape"]) == {1, 2, 3}
    assert set(codes["color"]) <= set(range(1, 9)) and len(set(codes["color"])) >= 7
    positions = np.concatenate([s["x"][1:] for s in SCENES] + [s["y"][1:] for s in SCENES])
    assert np.all(np.abs(positions) <= 3.0)


def test_pixel_coords_point_at_the_object():
    hits = total = 0
    for scene in SCENES:
        labels = _labels(scene)
        for k in range(1, int(scene["visibility"].sum())):
            col, row, depth = scene["pixel_coords"][k]
            assert depth > 0
            total += 1
            r, c = int(row), int(col)
            hits += 0 <= r < 60 and 0 <= c < 80 and labels[r, c] == k
    assert hits / total > 0.75  # the rest are occluded at their centre or off-image


def test_objects_have_their_colour_and_size():
    rgb = synthetic.COLOR_RGB / synthetic.COLOR_RGB.sum(axis=1, keepdims=True)  # chromaticity
    large, small, right, total = [], [], 0, 0
    for scene in SCENES:
        mask = scene["mask"][..., 0] > 0
        for k in range(1, int(scene["visibility"].sum())):
            pixels = scene["image"][mask[k]].astype(float)
            (large if scene["size"][k] == 1 else small).append(len(pixels))
            if len(pixels) < 20:
                continue
            mean = pixels.mean(axis=0)
            nearest = np.argmin(np.linalg.norm(rgb - mean / mean.sum(), axis=1))
            right += nearest + 1 == scene["color"][k]
            total += 1
    assert right / total > 0.85
    assert np.mean(large) > 2 * np.mean(small)


def test_nearer_objects_occlude_farther_ones():
    rng = np.random.default_rng(0)
    view = synthetic._view(60, 80)
    far = synthetic._Object(size=0, material=0, shape=1, color=1, x=0.0, y=1.5, rotation=0.0)
    near = synthetic._Object(size=0, material=1, shape=0, color=2, x=0.2, y=0.2, rotation=30.0)
    for objects in ([far, near], [near, far]):  # drawing order must not matter
        _, labels = synthetic._render(objects, rng, view)
        near_k = objects.index(near) + 1
        far_k = objects.index(far) + 1
        alone, alone_labels = synthetic._render([far], rng, view)
        overlap = (alone_labels == 1) & (labels == near_k)
        assert overlap.sum() > 20  # the near cube hides part of the far sphere
        assert np.all(labels[alone_labels == 1] != 0)  # far pixels are far or near
        assert (labels == far_k).sum() < (alone_labels == 1).sum()


def test_object_count_is_configurable_and_validated():
    config = synthetic.SceneConfig(40, 52, min_objects=3, max_objects=3)
    assert all(synthetic.scene(i, config=config)["visibility"].sum() == 4 for i in range(5))
    with pytest.raises(ValueError, match="max_objects"):
        synthetic.SceneConfig(max_objects=11)
    with pytest.raises(ValueError, match="too small"):
        synthetic.SceneConfig(4, 4)
