"""MaskDecoder: the harness, a NumPy oracle, relative positions, masks over slots, errors."""

import numpy as np
import pytest
from scipy.special import erf

from osc_tf.layers.mask_decoder import MaskDecoder, grid_centres
from tests.layer_harness import check_layer

RNG = np.random.default_rng(0)
B, K, D, SIDE, TOKENS = 2, 3, 8, 16, 2  # a 2x2 token grid over 16x16 images
N = TOKENS * TOKENS


def _inputs(batch=B, slots=K):
    attention = RNG.uniform(0.1, 1.0, size=(batch, slots, N)).astype("float32")
    return (
        RNG.normal(size=(batch, slots, D)).astype("float32"),
        attention / attention.sum(1, keepdims=True),
        RNG.normal(size=(batch, SIDE, SIDE, 3)).astype("float32"),
    )


@pytest.mark.parametrize(
    "kwargs, side",
    [
        ({"hidden": 16}, SIDE),
        ({"hidden": 16, "positions": "relative_scaled"}, SIDE),
        ({"hidden": 16, "positions": "absolute", "activation": "relu"}, SIDE),
        ({"hidden": 16, "resolution": 8}, 8),
        ({"hidden": 16, "grid": 4}, SIDE),
    ],
)
def test_harness(kwargs, side, tmp_path):
    block = side // kwargs.get("grid", TOKENS)
    c = 16
    params = 2 * D + (D * c + c) + (2 * c + c) + (c * c + c)
    params += (c * 3 * block * block + 3 * block * block) + c * block * block
    layer, outputs = check_layer(
        MaskDecoder,
        kwargs,
        _inputs(),
        tmp_path,
        expected_output_shapes={
            "masks": (B, K, SIDE, SIDE),
            "reconstruction": (B, side, side, 3),
            "reconstruction_target": (B, side, side, 3),
        },
        expected_num_trainable_weights=11,
        expected_num_params=params,
        train_output="reconstruction",
    )
    np.testing.assert_allclose(np.sum(outputs["masks"], axis=1), 1.0, rtol=1e-5)


def _gelu(x):
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def _oracle(layer, slots, attention, images):
    """The decoder in NumPy, pixel by pixel of each cell (relative positions)."""
    w = {v.path.split("/")[-2] + "/" + v.path.split("/")[-1]: np.asarray(v) for v in layer.weights}
    mean, var = slots.mean(-1, keepdims=True), slots.var(-1, keepdims=True)
    normed = (slots - mean) / np.sqrt(var + 1e-5) * w["norm/gamma"] + w["norm/beta"]
    s = normed @ w["slot_proj/kernel"] + w["slot_proj/bias"]  # [B, K, C]
    centre = (np.arange(TOKENS) + 0.5) / TOKENS * 2 - 1
    token_xy = np.array([(centre[j], centre[i]) for i in range(TOKENS) for j in range(TOKENS)])
    weights = attention / attention.sum(-1, keepdims=True)
    centroid = weights @ token_xy  # [B, K, 2]
    block = SIDE // TOKENS
    rgb = np.zeros((B, K, SIDE, SIDE, 3))
    logit = np.zeros((B, K, SIDE, SIDE))
    for b in range(B):
        for k in range(K):
            for i in range(TOKENS):
                for j in range(TOKENS):
                    pos = np.array([centre[j], centre[i]]) - centroid[b, k]
                    h = _gelu(s[b, k] + pos @ w["pos_proj/kernel"] + w["pos_proj/bias"])
                    h = _gelu(h @ w["fc1/kernel"] + w["fc1/bias"])
                    cell_rgb = (
                        (h @ w["rgb/kernel"] + w["rgb/bias"])
                        .reshape(3, block, block)
                        .transpose(1, 2, 0)
                    )
                    cell_alpha = (h @ w["alpha/kernel"]).reshape(block, block)
                    rows = slice(i * block, (i + 1) * block)
                    cols = slice(j * block, (j + 1) * block)
                    rgb[b, k, rows, cols] = cell_rgb
                    logit[b, k, rows, cols] = cell_alpha
    masks = np.exp(logit - logit.max(1, keepdims=True))
    masks /= masks.sum(1, keepdims=True)
    return masks, np.sum(masks[..., None] * rgb, axis=1)


def test_matches_numpy():
    slots, attention, images = _inputs()
    layer = MaskDecoder(hidden=16)
    out = layer(slots, attention, images)
    masks, reconstruction = _oracle(layer, slots, attention, images)
    np.testing.assert_allclose(out["masks"], masks, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["reconstruction"], reconstruction, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(out["reconstruction_target"], images)


def test_relative_positions_move_with_the_attention():
    """One slot: its attention one cell to the right paints the same picture one cell right."""
    slots, _, images = _inputs(batch=1, slots=1)
    left = np.zeros((1, 1, N), "float32")
    left[0, 0, 0] = 1.0  # token (0, 0)
    right = np.zeros((1, 1, N), "float32")
    right[0, 0, 1] = 1.0  # token (0, 1)
    block = SIDE // TOKENS
    for positions in ("relative", "relative_scaled"):
        layer = MaskDecoder(hidden=16, positions=positions)
        a = np.asarray(layer(slots, left, images)["reconstruction"])
        b = np.asarray(layer(slots, right, images)["reconstruction"])
        np.testing.assert_allclose(b[:, :block, block:], a[:, :block, :block], atol=1e-5)
        assert not np.allclose(a, b)
    absolute = MaskDecoder(hidden=16, positions="absolute")
    np.testing.assert_array_equal(
        absolute(slots, left, images)["reconstruction"],
        absolute(slots, right, images)["reconstruction"],
    )


def test_resized_masks_still_sum_to_one_and_target_is_the_resized_image():
    slots, attention, images = _inputs()
    out = MaskDecoder(hidden=16, resolution=8)(slots, attention, images)
    assert out["masks"].shape == (B, K, SIDE, SIDE)
    np.testing.assert_allclose(np.sum(out["masks"], axis=1), 1.0, rtol=1e-5)
    block_means = images.reshape(B, 8, 2, 8, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(out["reconstruction_target"], block_means, rtol=1e-5, atol=1e-6)


def test_grid_centres_are_row_major_xy():
    np.testing.assert_allclose(
        grid_centres(2), [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]
    )


def test_bad_settings_are_named():
    slots, attention, images = _inputs()
    with pytest.raises(ValueError, match="positions must be one of"):
        MaskDecoder(positions="centroid")
    with pytest.raises(ValueError, match="MaskDecoder.hidden must be a positive integer"):
        MaskDecoder(hidden=0)
    with pytest.raises(ValueError, match="resolution = 12 is not a multiple of the grid 8"):
        MaskDecoder(resolution=12, grid=8)(slots, attention, images)
    with pytest.raises(ValueError, match="resolution = 6 does not divide the image side 16"):
        MaskDecoder(resolution=6, grid=2)(slots, attention, images)
    with pytest.raises(ValueError, match="square images"):
        MaskDecoder()(slots, attention, images[:, :, :8])
