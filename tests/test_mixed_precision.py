"""Every layer under the mixed_bfloat16 policy stays close to its float32 twin."""

import keras
import numpy as np
import pytest

from osc_tf.layers.decoders import CoAttentionDecoder, CrossAttentionDecoder
from osc_tf.layers.heads import CrossAttentionPool, MLPHead
from osc_tf.layers.queries import GaussianQueries, KMeansQueries, LearnedQueries
from osc_tf.layers.slot_attention import SlotAttention
from osc_tf.layers.vit import ViT

RNG = np.random.default_rng(0)
TOKENS = RNG.normal(size=(2, 16, 16)).astype("float32")
QUERIES = RNG.normal(size=(2, 4, 16)).astype("float32")
# Tokens around 4 well-separated centres, so that bfloat16 rounding cannot move
# a point to another cluster. The k-means cases start from k-means++ (one seed
# per cluster): a random start may put two seeds in one cluster, whose split is
# then decided by rounding noise and differs between the two precisions.
CLUSTERED = (
    np.repeat(RNG.normal(size=(2, 4, 16)) * 5, 4, axis=1) + 0.01 * RNG.normal(size=(2, 16, 16))
).astype("float32")

CASES = {
    "vit": (
        ViT,
        {"patch_size": 4, "embed_dim": 16, "num_layers": 2, "num_heads": 2},
        (RNG.normal(size=(2, 16, 16, 3)).astype("float32"),),
        {},
    ),
    "learned": (LearnedQueries, {"num_slots": 4}, (TOKENS,), {}),
    "gaussian": (GaussianQueries, {"num_slots": 4, "num_components": 2}, (TOKENS,), {}),
    "kmeans_euclidean": (KMeansQueries, {"num_slots": 4, "init": "kmeans++"}, (CLUSTERED,), {}),
    "kmeans_cosine": (
        KMeansQueries,
        {"num_slots": 4, "distance": "cosine", "init": "kmeans++"},
        (CLUSTERED,),
        {},
    ),
    "slot_attention": (SlotAttention, {}, (QUERIES, TOKENS), {}),
    "cross_attention": (CrossAttentionDecoder, {"num_heads": 2}, (QUERIES, TOKENS), {}),
    "co_attention": (CoAttentionDecoder, {"num_heads": 2}, (QUERIES, TOKENS), {}),
    "mlp_head": (MLPHead, {"out_dim": 8}, (QUERIES,), {}),
    "cross_attention_pool": (CrossAttentionPool, {"num_heads": 2}, (TOKENS,), {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_under_mixed_bfloat16_is_close_to_float32(name):
    cls, kwargs, inputs, call_kwargs = CASES[name]
    full = cls(**kwargs)
    mixed = cls(**kwargs, dtype="mixed_bfloat16")
    reference = keras.tree.flatten(full(*inputs, **call_kwargs))
    mixed(*inputs, **call_kwargs)
    mixed.set_weights(full.get_weights())
    assert all(w.dtype == "float32" for w in mixed.weights)  # variables stay float32
    outputs = keras.tree.flatten(mixed(*inputs, **call_kwargs))
    for out, ref in zip(outputs, reference, strict=True):
        ref = np.asarray(ref)
        if name.startswith("kmeans"):
            assert out.dtype == "bfloat16"
        out = np.asarray(keras.ops.cast(out, "float32"))
        assert np.all(np.isfinite(out))
        # bfloat16 keeps 8 bits of mantissa: measured errors are below 1% of the scale.
        np.testing.assert_allclose(out, ref, atol=0.02 * np.abs(ref).max(), rtol=0)


def test_attention_maps_stay_float32_under_mixed_precision():
    slots, attention = SlotAttention(dtype="mixed_bfloat16")(QUERIES, TOKENS)
    assert slots.dtype == "bfloat16" and attention.dtype == "float32"
    np.testing.assert_allclose(np.sum(attention, axis=1), 1.0, rtol=1e-6)
    _, attention = CrossAttentionDecoder(num_heads=2, dtype="mixed_bfloat16")(QUERIES, TOKENS)
    assert attention.dtype == "float32"
    np.testing.assert_allclose(np.sum(attention, axis=-1), 1.0, rtol=1e-6)
