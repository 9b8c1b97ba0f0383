"""Cross- and co-attention decoders: harness, attention rows, permutation symmetry, reuse."""

import numpy as np
import pytest

from osc_tf.layers.decoders import CoAttentionDecoder, CrossAttentionDecoder
from tests.layer_harness import check_layer

RNG = np.random.default_rng(0)
B, K, N, D = 2, 3, 7, 8
QUERIES = RNG.normal(size=(B, K, D)).astype("float32")
TOKENS = RNG.normal(size=(B, N, D)).astype("float32")

# Weights per block: norms 2 each; attention q, k, v (no bias: the original's
# default), out with bias 5; MLP 4.
CROSS_BLOCK = 2 + 5 + 2 + 5 + 2 + 4  # self-attention, cross-attention, MLP
TOKEN_BLOCK = 2 + 2 + 5 + 2 + 4  # context norm, cross-attention, MLP


@pytest.mark.parametrize(
    "cls, expected",
    [
        (CrossAttentionDecoder, 2 + 2 * CROSS_BLOCK),
        (CoAttentionDecoder, 2 * (CROSS_BLOCK + 2) + TOKEN_BLOCK),
    ],
)
def test_decoder_harness(tmp_path, cls, expected):
    # Glorot rather than the default N(0, 0.02²): with tiny weights some gradients
    # (a token block's query norm) are ~1e-9 and one SGD step leaves them equal in float32.
    _, (slots, attention) = check_layer(
        cls,
        {"num_layers": 2, "num_heads": 2, "mlp_ratio": 2.0, "init": "glorot_uniform"},
        (QUERIES, TOKENS),
        tmp_path,
        expected_output_shapes=[(B, K, D), (B, K, N)],
        expected_num_trainable_weights=expected,
    )
    np.testing.assert_allclose(np.sum(attention, axis=-1), 1.0, rtol=1e-6)  # over tokens
    assert np.all(attention >= 0)


@pytest.mark.parametrize("cls", [CrossAttentionDecoder, CoAttentionDecoder])
def test_decoder_permutation_symmetry(cls):
    layer = cls(num_layers=2, num_heads=2)
    slots, attention = (np.array(t) for t in layer(QUERIES, TOKENS))
    query_order, token_order = RNG.permutation(K), RNG.permutation(N)
    permuted_slots, permuted_attention = layer(QUERIES[:, query_order], TOKENS[:, token_order])
    # Slots follow the queries' order and ignore the tokens' order.
    np.testing.assert_allclose(permuted_slots, slots[:, query_order], rtol=1e-5, atol=1e-5)
    expected = attention[:, query_order][:, :, token_order]
    np.testing.assert_allclose(permuted_attention, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cls, expected",
    [(CrossAttentionDecoder, 2 + CROSS_BLOCK), (CoAttentionDecoder, CROSS_BLOCK + 2 + TOKEN_BLOCK)],
)
def test_reused_layers_share_weights(cls, expected):
    layer = cls(num_layers=3, num_heads=2, reuse_layers=True)
    layer(QUERIES, TOKENS)
    assert len(layer.trainable_weights) == expected
    assert cls.from_config(layer.get_config()).reuse_layers is True


def test_reused_layers_apply_one_block_repeatedly():
    single = CrossAttentionDecoder(num_layers=1, num_heads=2)
    reused = CrossAttentionDecoder(num_layers=3, num_heads=2, reuse_layers=True)
    single(QUERIES, TOKENS), reused(QUERIES, TOKENS)
    reused.set_weights(single.get_weights())
    tokens = single.norm_tokens(TOKENS)
    x = QUERIES
    for _ in range(3):
        x, weights = single.blocks[0](x, tokens)
    slots, attention = reused(QUERIES, TOKENS)
    np.testing.assert_allclose(slots, x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(attention, np.mean(weights, axis=1), rtol=1e-6)


def test_co_attention_single_layer_has_no_unused_token_block():
    layer = CoAttentionDecoder(num_layers=1, num_heads=2)
    layer(QUERIES, TOKENS)
    assert layer.token_blocks == [] and len(layer.trainable_weights) == CROSS_BLOCK + 2
