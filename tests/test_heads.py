"""MLPHead, FeedForward and CrossAttentionPool: harness, NumPy reference, set invariance."""

import numpy as np
import pytest
from scipy.special import erf

from osc_tf.layers.feedforward import FeedForward
from osc_tf.layers.heads import CrossAttentionPool, MLPHead
from tests.layer_harness import check_layer

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("out_bias", [True, False])
def test_mlp_head_harness_and_numpy_reference(tmp_path, out_bias):
    x = RNG.normal(size=(3, 5, 8))
    layer, _ = check_layer(
        MLPHead,
        {"hidden_mult": 4.0, "out_dim": 6, "out_bias": out_bias},
        (x,),
        tmp_path,
        expected_output_shapes=(3, 5, 6),
        expected_num_trainable_weights=3 + out_bias,
        expected_num_params=8 * 32 + 32 + 32 * 6 + 6 * out_bias,
    )
    w1, b1, w2 = (np.array(v) for v in layer.trainable_weights[:3])
    hidden = x @ w1 + b1
    hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))  # exact GELU
    expected = hidden @ w2 + (np.array(layer.trainable_weights[3]) if out_bias else 0.0)
    np.testing.assert_allclose(layer(x.astype("float32")), expected, rtol=1e-5, atol=1e-5)


def test_mlp_head_hidden_dim_overrides_mult_and_default_width():
    layer = MLPHead(hidden_mult=2.0, hidden_dim=7)
    out = layer(np.zeros((2, 5), "float32"))
    assert out.shape == (2, 5)  # out_dim None keeps D
    assert layer.fc1.kernel.shape == (5, 7)


def test_cross_attention_pool_harness_and_permutation_invariance(tmp_path):
    x = RNG.normal(size=(2, 6, 8))
    layer, out = check_layer(
        CrossAttentionPool,
        {"num_heads": 2, "mlp_ratio": 2.0},
        (x,),
        tmp_path,
        expected_output_shapes=(2, 8),
        # query, 3 norms × 2, q/k/v/out kernels + biases (8), MLP (4)
        expected_num_trainable_weights=1 + 6 + 8 + 4,
    )
    permuted = layer(x[:, RNG.permutation(6)].astype("float32"))
    np.testing.assert_allclose(permuted, out, rtol=1e-5, atol=1e-6)


def test_feed_forward_harness_reference_and_vit_init(tmp_path):
    x = RNG.normal(size=(3, 5, 8))
    layer, _ = check_layer(
        FeedForward,
        {"mlp_ratio": 2.0, "activation": "relu"},
        (x,),
        tmp_path,
        expected_output_shapes=(3, 5, 8),
        expected_num_trainable_weights=4,
        expected_num_params=8 * 16 + 16 + 16 * 8 + 8,
    )
    w1, b1, w2, b2 = (np.array(v) for v in layer.trainable_weights)
    expected = np.maximum(x @ w1 + b1, 0.0) @ w2 + b2
    np.testing.assert_allclose(layer(x.astype("float32")), expected, rtol=1e-5, atol=1e-5)
    # The transformer blocks' scheme by default (N(0, 0.02²), zero biases); heads: "torch".
    wide = FeedForward(mlp_ratio=4.0)
    wide.build((None, 256))
    assert np.std(np.array(wide.fc1.kernel)) == pytest.approx(0.02, rel=0.05)
    assert not np.any(np.array(wide.fc1.bias))
    head = MLPHead()
    head.build((None, 256))
    assert np.abs(np.array(head.fc1.bias)).max() <= 1 / 16
    assert np.any(np.array(head.fc1.bias))
