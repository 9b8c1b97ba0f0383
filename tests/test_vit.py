"""Attention, transformer block and ViT backbone: harness, NumPy references, resizing."""

import keras
import numpy as np
import pytest

from osc_tf.layers.attention import MultiHeadAttention
from osc_tf.layers.vit import TransformerBlock, ViT
from tests.layer_harness import check_layer

RNG = np.random.default_rng(0)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_multi_head_attention_matches_numpy(tmp_path):
    x, context = RNG.normal(size=(2, 3, 8)), RNG.normal(size=(2, 5, 6))
    layer, (out, weights) = check_layer(
        MultiHeadAttention,
        {"num_heads": 2, "qkv_bias": True},
        (x, context),
        tmp_path,
        expected_output_shapes=[(2, 3, 8), (2, 2, 3, 5)],
        expected_num_trainable_weights=8,
        expected_num_params=(8 * 8 + 8) + 2 * (6 * 8 + 8) + (8 * 8 + 8),
    )
    wq, bq, wk, bk, wv, bv, wo, bo = (np.array(w) for w in layer.trainable_weights)
    heads = lambda t: t.reshape(2, t.shape[1], 2, 4)  # noqa: E731  [B, L, h, D/h]
    q, k, v = heads(x @ wq + bq), heads(context @ wk + bk), heads(context @ wv + bv)
    expected_w = _softmax(np.einsum("blhd,bmhd->bhlm", q, k) / np.sqrt(4.0), axis=-1)
    expected = np.einsum("bhlm,bmhd->blhd", expected_w, v).reshape(2, 3, 8) @ wo + bo
    np.testing.assert_allclose(weights, expected_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.sum(weights, axis=-1), 1.0, rtol=1e-6)


def test_multi_head_attention_rejects_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(num_heads=3)(np.zeros((1, 2, 8), "float32"))


def test_transformer_block_harness_and_drop_path(tmp_path):
    x = RNG.normal(size=(2, 5, 8))
    check_layer(
        TransformerBlock,
        {"num_heads": 2, "mlp_ratio": 2.0, "qkv_bias": True},
        (x,),
        tmp_path,
        expected_output_shapes=(2, 5, 8),
        expected_num_trainable_weights=4 + 8 + 4,
    )
    # Drop-path drops a whole residual branch per sample: with rate 0.5 and two
    # branches, a quarter of the samples come out exactly unchanged.
    block = TransformerBlock(num_heads=2, drop_path=0.5, seed=3)
    batch = np.repeat(RNG.normal(size=(1, 5, 8)), 400, axis=0).astype("float32")
    out = np.array(block(batch, training=True))
    identity = np.all(out == batch, axis=(1, 2)).mean()
    assert 0.18 < identity < 0.32
    np.testing.assert_array_equal(block(batch), block(batch))  # inference is deterministic


def _vit_param_count(p, d, layers, grid, mlp_ratio=2, qkv_bias=False, cls=False, out_norm=False):
    patch = p * p * 3 * d + d
    block = 2 * 2 * d + 3 * d * d + 3 * d * qkv_bias + d * d + d
    block += d * mlp_ratio * d + mlp_ratio * d + mlp_ratio * d * d + d
    return patch + grid * d + cls * d + layers * block + out_norm * 2 * d


@pytest.mark.parametrize("pooling, output_norm, patch_size", [("avg", False, 8), ("cls", True, 4)])
def test_vit_harness_and_parameter_count(tmp_path, pooling, output_norm, patch_size):
    images = RNG.normal(size=(2, 16, 16, 3))
    grid = (16 // patch_size) ** 2
    layer, out = check_layer(
        ViT,
        {
            "patch_size": patch_size,
            "embed_dim": 16,
            "num_layers": 2,
            "num_heads": 2,
            "pooling": pooling,
            "output_norm": output_norm,
        },
        (images,),
        tmp_path,
        expected_output_shapes={"tokens": (2, grid, 16), "pooled": (2, 16)},
        expected_num_trainable_weights=3 + (pooling == "cls") + 2 * 13 + 2 * output_norm,
        expected_num_params=_vit_param_count(
            patch_size, 16, 2, grid, cls=pooling == "cls", out_norm=output_norm
        ),
        train_output="pooled",
    )
    if pooling == "avg":
        np.testing.assert_allclose(out["pooled"], np.mean(out["tokens"], axis=1), atol=1e-6)


def test_vit_defaults_are_the_original_study():
    config = ViT().get_config()
    expected = {"patch_size": 8, "embed_dim": 64, "num_layers": 4, "num_heads": 4}
    assert {k: config[k] for k in expected} == expected
    assert config["mlp_ratio"] == 2.0 and config["pos_embed_every_layer"] is True


def test_vit_positional_embedding_is_added_before_every_block_or_only_the_first():
    images = RNG.normal(size=(1, 16, 16, 3)).astype("float32")
    every, first = (ViT(8, 16, 2, 2, pos_embed_every_layer=flag) for flag in (True, False))
    every(images), first(images)
    first.set_weights(every.get_weights())
    assert not np.allclose(every(images)["tokens"], first(images)["tokens"])
    single = [ViT(8, 16, 1, 2, pos_embed_every_layer=flag) for flag in (True, False)]
    single[0](images), single[1](images)
    single[1].set_weights(single[0].get_weights())
    np.testing.assert_array_equal(single[0](images)["tokens"], single[1](images)["tokens"])


def test_vit_resizes_positional_embedding_for_other_image_sizes():
    vit = ViT(patch_size=4, embed_dim=8, num_layers=1, num_heads=2)
    vit(np.zeros((1, 16, 16, 3), "float32"))
    table = np.array(vit.pos_embed)[0]  # [4, 4, D]
    np.testing.assert_array_equal(vit.positional_embedding(16, 16)[0], table.reshape(16, 8))
    # A constant table stays constant when resized; other sizes run end to end.
    vit.pos_embed.assign(np.ones_like(vit.pos_embed) * 0.3)
    np.testing.assert_allclose(vit.positional_embedding(32, 24), 0.3, rtol=1e-6)
    out = vit(np.zeros((2, 32, 24, 3), "float32"))
    assert out["tokens"].shape == (2, 8 * 6, 8)


def test_vit_rejects_bad_configuration():
    with pytest.raises(ValueError, match="pooling"):
        ViT(pooling="max")
    with pytest.raises(ValueError, match="divisible"):
        ViT(patch_size=8)(np.zeros((1, 12, 16, 3), "float32"))


def test_vit_dropout_is_seeded():
    images = RNG.normal(size=(2, 16, 16, 3)).astype("float32")
    outs = []
    for _ in range(2):
        keras.utils.set_random_seed(1)
        vit = ViT(8, 16, 1, 2, dropout=0.3, drop_path=0.2, seed=5)
        outs.append(np.array(vit(images, training=True)["tokens"]))
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embed_dim": 30, "num_heads": 4}, r"ViT.embed_dim = 30, ViT.num_heads = 4: expected"),
        ({"patch_size": 0}, r"ViT.patch_size = 0: expected an integer >= 1"),
        ({"drop_path": 1.0}, r"ViT.drop_path = 1.0: expected a rate in \[0, 1\)"),
        ({"pooling": "max"}, r"ViT.pooling = 'max': expected one of"),
    ],
)
def test_bad_values_name_parameter_value_and_expectation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ViT(**kwargs)
