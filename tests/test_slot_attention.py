"""SlotAttention against an independent NumPy implementation of the pseudo-code."""

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.layers.slot_attention import SlotAttention
from tests.layer_harness import check_layer

RNG = np.random.default_rng(0)
B, K, N, D, DT = 2, 3, 10, 8, 6


def _layer_norm(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gru_reset_after(inputs, state, kernel, recurrent, bias):
    """GRU with the reset gate applied after the recurrent matmul; gates ordered z, r, h."""
    x_z, x_r, x_h = np.split(inputs @ kernel + bias[0], 3, axis=-1)
    h_z, h_r, h_h = np.split(state @ recurrent + bias[1], 3, axis=-1)
    z = _sigmoid(x_z + h_z)
    r = _sigmoid(x_r + h_r)
    candidate = np.tanh(x_h + r * h_h)
    return z * state + (1.0 - z) * candidate


def numpy_slot_attention(queries, tokens, w, num_iters, eps=1e-8):
    x = _layer_norm(tokens, w["norm_inputs/gamma"], w["norm_inputs/beta"])
    k, v = x @ w["k/kernel"], x @ w["v/kernel"]
    slots = queries
    for _ in range(num_iters):
        prev = slots
        q = _layer_norm(slots, w["norm_slots/gamma"], w["norm_slots/beta"]) @ w["q/kernel"]
        logits = np.einsum("bkd,bnd->bkn", q / np.sqrt(D), k)
        a = np.exp(logits - logits.max(axis=1, keepdims=True))
        a = a / a.sum(axis=1, keepdims=True)  # softmax over slots
        weights = (a + eps) / (a + eps).sum(axis=2, keepdims=True)
        updates = np.einsum("bkn,bnd->bkd", weights, v)
        slots = _gru_reset_after(
            updates, prev, w["gru/kernel"], w["gru/recurrent_kernel"], w["gru/bias"]
        )
        hidden = _layer_norm(slots, w["norm_mlp/gamma"], w["norm_mlp/beta"])
        hidden = np.maximum(hidden @ w["mlp/fc1/kernel"] + w["mlp/fc1/bias"], 0.0)
        slots = slots + hidden @ w["mlp/fc2/kernel"] + w["mlp/fc2/bias"]
    return slots, a


def _randomise(layer):
    """Random values for every weight (biases and norms too), keyed by path below the layer."""
    named = {}
    for variable in layer.weights:
        value = RNG.normal(size=variable.shape).astype("float32") * 0.5
        variable.assign(value)
        named[variable.path.split("/", 1)[1]] = value.astype("float64")
    return named


def _inputs():
    return RNG.normal(size=(B, K, D)), RNG.normal(size=(B, N, DT))


def test_slot_attention_harness(tmp_path):
    check_layer(
        SlotAttention,
        {"num_iters": 2, "hidden_mult": 2.0},
        _inputs(),
        tmp_path,
        expected_output_shapes=[(B, K, D), (B, K, N)],
        expected_num_trainable_weights=16,
        expected_num_params=12 + 16 + 16 + 280 + 96 + 64 + 2 * D * 3 * D + 2 * 3 * D,
    )


@pytest.mark.parametrize("num_iters", [1, 3])
def test_slot_attention_matches_numpy(num_iters):
    queries, tokens = (x.astype("float32") for x in _inputs())
    layer = SlotAttention(num_iters=num_iters)
    layer(queries, tokens)
    weights = _randomise(layer)
    assert weights["gru/bias"].shape == (2, 3 * D)  # reset_after=True: input and recurrent bias
    slots, attention = layer(queries, tokens)
    expected_slots, expected_attention = numpy_slot_attention(
        queries.astype("float64"), tokens.astype("float64"), weights, num_iters
    )
    np.testing.assert_allclose(slots, expected_slots, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(attention, expected_attention, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(attention, axis=1), 1.0, rtol=1e-6)  # over slots
    _, per_iteration = layer.iterate(queries, tokens)
    assert per_iteration.shape == (B, num_iters, K, N)
    np.testing.assert_array_equal(per_iteration[:, -1], attention)


def test_slot_attention_implicit_gradient():
    queries, tokens = (tf.constant(x, tf.float32) for x in _inputs())
    full, implicit = SlotAttention(num_iters=3), SlotAttention(num_iters=3, implicit_grad=True)
    full(queries, tokens), implicit(queries, tokens)
    implicit.set_weights(full.get_weights())
    grads = []
    for layer in (full, implicit):
        with tf.GradientTape() as tape:
            tape.watch(queries)
            slots, _ = layer(queries, tokens)
            loss = tf.reduce_sum(tf.square(slots))
        grads.append(tape.gradient(loss, [queries, layer.q_proj.kernel]))
        # Same forward value (up to the rounding of the straight-through ``+ q - q``).
        np.testing.assert_allclose(slots, full(queries, tokens)[0], rtol=1e-6, atol=1e-6)
    (full_q, full_w), (implicit_q, implicit_w) = grads
    assert np.any(np.array(implicit_q) != 0) and not np.allclose(implicit_q, full_q)
    assert not np.allclose(implicit_w, full_w)
    # The implicit gradient equals the gradient of one iteration from the fixed point.
    slots_before, _ = SlotAttention.iterate(_truncated(full, 2), queries, tokens)
    one = _truncated(full, 1)
    with tf.GradientTape() as tape:
        tape.watch(slots_before)
        last, _ = one(slots_before, tokens)
        loss = tf.reduce_sum(tf.square(last))
    np.testing.assert_allclose(implicit_q, tape.gradient(loss, slots_before), rtol=1e-5, atol=1e-6)


def _truncated(layer, num_iters):
    """A SlotAttention sharing the weights of ``layer`` but running ``num_iters`` iterations."""
    twin = SlotAttention(num_iters=num_iters)
    twin(tf.zeros((1, K, D)), tf.zeros((1, N, DT)))
    twin.set_weights(layer.get_weights())
    return twin
