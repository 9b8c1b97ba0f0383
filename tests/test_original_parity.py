"""Our losses, matching, slot attention, attention modules and k-means against numbers
produced by running the original PyTorch code (``../shared/parity/original_fixtures.md``).

Weights in the original's names and layouts go through ``osc_tf.original`` (the same
table that imports the original's checkpoints). Tolerances are the fixtures' suggested
ones for a float32 re-implementation: ``rtol=1e-5, atol=1e-5`` for losses and modules,
``rtol=1e-4, atol=1e-5`` for gradients; integer arrays (matchings) exactly.
"""

import numpy as np
import pytest
import tensorflow as tf

from osc_tf import losses, matching, original
from osc_tf.layers.attention import MultiHeadAttention
from osc_tf.layers.kmeans import kmeans
from osc_tf.layers.slot_attention import SlotAttention
from tests import parity_data
from tests.parity_data import assert_close

parity_data.require()
F = parity_data.fixtures()
GRAD = {"rtol": 1e-4, "atol": 1e-5}


def _value_and_grads(fn, *inputs):
    """fn(*inputs) and its gradient with respect to every input (None if disconnected)."""
    tensors = [tf.constant(x) for x in inputs]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        value = fn(*tensors)
    return value, tape.gradient(value, tensors)


def _assert_no_gradient(grad):
    """A stop-gradient input: PyTorch's ``.grad`` is None, ours None or zeros."""
    assert grad is None or not np.any(grad.numpy())


# --- a. global losses ------------------------------------------------------------------------


def test_global_contrastive_value_and_gradient():
    projs = F["g_projs"]
    rows = projs.shape[0]
    for t, key in ((0.1, "t0p1"), (1.0, "t1")):
        value = losses.global_contrastive(projs, temperature=t)
        assert_close(f"g_ctr_{key}_mean", value, F[f"g_ctr_{key}_mean"])
        # The original's sum reduction is the mean times the 2B rows.
        assert_close(f"g_ctr_{key}_sum", value * rows, F[f"g_ctr_{key}_sum"])
    _, (grad,) = _value_and_grads(lambda p: losses.global_contrastive(p, 0.1), projs)
    assert_close("g_ctr_t0p1_mean_grad_projs", grad, F["g_ctr_t0p1_mean_grad_projs"], **GRAD)


def test_global_similarity_value_and_gradients():
    value, (grad_f, grad_p) = _value_and_grads(losses.global_similarity, F["g_feats"], F["g_projs"])
    assert_close("g_sim_mean", value, F["g_sim_mean"])
    assert_close("g_sim_sum", value * F["g_projs"].shape[0], F["g_sim_sum"])
    assert_close("g_sim_mean_grad_projs", grad_p, F["g_sim_mean_grad_projs"], **GRAD)
    assert bool(F["g_sim_mean_grad_feats_is_none"]) and not np.any(F["g_sim_mean_grad_feats"])
    _assert_no_gradient(grad_f)


# --- b. object losses and the Hungarian matching ---------------------------------------------


@pytest.mark.parametrize("name", ["ctr_all", "ctr_img", "sim_img", "rand_sim_img"])
def test_matching_of_the_original_cost_matrices(name):
    """Our solver on the exact cost matrices the original gave scipy."""
    cost = F[f"o_{name}_lsa_cost"]
    cols = matching.linear_sum_assignment(cost, maximize=True).numpy()
    np.testing.assert_array_equal(cols, F[f"o_{name}_cols"])


def test_object_contrastive_all_value_matching_and_gradient():
    slots = F["o_slots"]
    value, cols = losses.object_contrastive_all(slots, 0.1, return_matching=True)
    assert_close("o_ctr_all_mean", value, F["o_ctr_all_mean"])
    assert_close("o_ctr_all_sum", value * 30, F["o_ctr_all_sum"])
    np.testing.assert_array_equal(cols.numpy(), F["o_ctr_all_cols"])
    # The inputs were built so that the right match undoes the shuffle of view 1.
    perm = F["o_view1_perm_used_to_build_inputs"]
    np.testing.assert_array_equal(cols.numpy(), np.argsort(perm, axis=1))
    _, (grad,) = _value_and_grads(lambda s: losses.object_contrastive_all(s, 0.1), slots)
    assert_close("o_ctr_all_mean_grad_slots", grad, F["o_ctr_all_mean_grad_slots"], **GRAD)


def test_object_contrastive_image_value_matching_and_gradient():
    slots = F["o_slots"]
    value, cols = losses.object_contrastive_image(slots, 0.1, return_matching=True)
    assert_close("o_ctr_img_mean", value, F["o_ctr_img_mean"])
    assert_close("o_ctr_img_sum", value * 30, F["o_ctr_img_sum"])
    np.testing.assert_array_equal(cols.numpy(), F["o_ctr_img_cols"])
    _, (grad,) = _value_and_grads(lambda s: losses.object_contrastive_image(s, 0.1), slots)
    assert_close("o_ctr_img_mean_grad_slots", grad, F["o_ctr_img_mean_grad_slots"], **GRAD)


def test_object_similarity_value_matching_and_gradients():
    """Only the mean is compared: the original's ``sum`` is (1 - Σ cos) / 2, not a sum."""
    value, cols = losses.object_similarity(F["o_sim_f"], F["o_sim_p"], return_matching=True)
    assert_close("o_sim_img_mean", value, F["o_sim_img_mean"])
    assert_close("o_sim_img_none (mean)", value, F["o_sim_img_none"].mean())
    np.testing.assert_array_equal(cols.numpy(), F["o_sim_img_cols"])
    _, (grad_f, grad_p) = _value_and_grads(losses.object_similarity, F["o_sim_f"], F["o_sim_p"])
    assert_close("o_sim_img_mean_grad_p", grad_p, F["o_sim_img_mean_grad_p"], **GRAD)
    assert bool(F["o_sim_img_mean_grad_f_is_none"])
    _assert_no_gradient(grad_f)


def test_object_losses_on_unstructured_inputs():
    """Random inputs, where a greedy row-wise match would pick duplicate columns."""
    for name, fn, args in (
        ("ctr_all", losses.object_contrastive_all, (F["o_rand_slots"], 0.1)),
        ("ctr_img", losses.object_contrastive_image, (F["o_rand_slots"], 0.1)),
        ("sim_img", losses.object_similarity, (F["o_rand_sim_f"], F["o_rand_sim_p"])),
    ):
        value, cols = fn(*args, return_matching=True)
        assert_close(f"o_rand_{name}_mean", value, F[f"o_rand_{name}_mean"])
        assert_close(f"o_rand_{name}_none (mean)", value, F[f"o_rand_{name}_none"].mean())
        np.testing.assert_array_equal(cols.numpy(), F[f"o_rand_{name}_cols"], err_msg=name)


# --- c. best and worst values -----------------------------------------------------------------


def _global_extremes(num_images: int):
    collapsed = np.ones((2 * num_images, 8))
    ideal = np.tile(np.eye(num_images), (2, 1))  # rows i and i + B are both e_i
    return collapsed, ideal


def _object_extremes(num_images: int, num_slots: int):
    collapsed = np.ones((2 * num_images, num_slots, 16))
    basis = np.eye(num_images * num_slots).reshape(num_images, num_slots, -1)
    return collapsed, np.concatenate([basis, basis])  # slot (b, k) is e_{bK+k} in both views


def test_best_and_worst_values_are_what_our_losses_reach():
    """Collapsed inputs give the worst value, ideal ones the best (float64 inputs)."""
    for (b, t), (best, worst) in zip(F["bw_global_settings"], F["bw_global_values"], strict=True):
        collapsed, ideal = _global_extremes(int(b))
        np.testing.assert_allclose(losses.global_contrastive(collapsed, t), worst, rtol=1e-9)
        np.testing.assert_allclose(losses.global_contrastive(ideal, t), best, rtol=1e-9)
    settings, values = F["bw_objects_settings"], F["bw_objects_values"]
    for (b, k, t), (best, worst) in zip(settings, values, strict=True):
        collapsed, ideal = _object_extremes(int(b), int(k))
        np.testing.assert_allclose(losses.object_contrastive_all(collapsed, t), worst, rtol=1e-9)
        np.testing.assert_allclose(losses.object_contrastive_all(ideal, t), best, rtol=1e-9)


def test_collapsed_and_ideal_checks_of_the_original():
    global_collapsed, global_ideal = _global_extremes(4)
    object_collapsed, object_ideal = _object_extremes(3, 5)
    for name, loss, x in (
        ("bw_global_check_collapsed", losses.global_contrastive, global_collapsed),
        ("bw_global_check_ideal", losses.global_contrastive, global_ideal),
        ("bw_objects_check_collapsed", losses.object_contrastive_all, object_collapsed),
        ("bw_objects_check_ideal", losses.object_contrastive_all, object_ideal),
    ):
        assert_close(name, loss(x.astype(np.float32)), F[name], rtol=1e-5, atol=1e-6)


# --- d. slot attention ------------------------------------------------------------------------


def _slot_attention(num_iters: int) -> SlotAttention:
    """SlotAttention(dim 16, hidden 32) holding the fixture's weights ``sa_sd.*``."""
    layer = SlotAttention(num_iters=num_iters, hidden_mult=2.0)
    layer.build(F["sa_slots_in"].shape, F["sa_inputs"].shape)
    imported = original.assign(
        list(original.slot_attention_entries(layer, prefix="")), parity_data.state_dict("sa_sd")
    )
    assert imported == 17
    return layer


def test_slot_attention_every_iteration():
    slots_in, inputs = F["sa_slots_in"], F["sa_inputs"]
    layer = _slot_attention(3)
    slots, attention = layer(slots_in, inputs, all_steps=True)  # [B, T, K, N]
    assert_close("sa_slots_out", slots, F["sa_slots_out"])
    steps = np.transpose(attention.numpy(), (1, 0, 2, 3))  # [T, B, K, N] as the fixture
    assert_close("sa_attn_softmax", steps, F["sa_attn_softmax"])

    # The weighted mean over inputs and the GRU's input, from our attention and values.
    renorm = (steps + 1e-8) / (steps + 1e-8).sum(axis=-1, keepdims=True)
    assert_close("sa_attn_renorm", renorm, F["sa_attn_renorm"])
    values = layer.v_proj(layer.norm_inputs(inputs)).numpy()  # [B, N, D]
    updates = np.einsum("tbkn,bnd->tbkd", renorm, values).reshape(3, -1, 16)
    assert_close("sa_gru_x", updates, F["sa_gru_x"])

    # The GRU cell on the original's own GRU inputs and hidden states.
    for it in range(3):
        out, _ = layer.gru(F["sa_gru_x"][it], [F["sa_gru_h"][it]])
        assert_close(f"sa_gru_out[{it}]", out, F["sa_gru_out"][it])

    # Slots after each iteration: the same weights run for 1, 2 and 3 iterations.
    for it in range(3):
        partial, _ = _slot_attention(it + 1)(slots_in, inputs)
        assert_close(f"sa_slots_per_iter[{it}]", partial, F["sa_slots_per_iter"][it])


def test_slot_attention_input_gradients():
    layer = _slot_attention(3)
    weight = tf.constant(F["sa_grad_weight"])
    _, (grad_slots, grad_inputs) = _value_and_grads(
        lambda s, x: tf.reduce_sum(layer(s, x)[0] * weight), F["sa_slots_in"], F["sa_inputs"]
    )
    assert_close("sa_grad_slots_in", grad_slots, F["sa_grad_slots_in"], **GRAD)
    assert_close("sa_grad_inputs", grad_inputs, F["sa_grad_inputs"], **GRAD)


# --- g. attention modules ---------------------------------------------------------------------


def test_self_attention_unscaled():
    """The original's SelfAttention never divides its logits by sqrt(D/h)."""
    attn = MultiHeadAttention(4, qkv_bias=False, scale=False)
    attn.build(F["att_x"].shape)
    sd = parity_data.state_dict("att_self_sd")
    assert original.assign(list(original.self_attention_entries(attn)), sd) == 3
    out, weights = attn(F["att_x"], need_weights=True)
    assert_close("att_self_out", out, F["att_self_out"])
    assert_close("att_self_attn", weights, F["att_self_attn"])
    # The memory-lean path (weights never materialised) gives the same output.
    lean, _ = attn(F["att_x"], need_weights=False)
    assert_close("att_self_out (fused)", lean, F["att_self_out"])


def test_cross_attention_scaled():
    attn = MultiHeadAttention(4, qkv_bias=False, scale=True)
    attn.build(F["att_x"].shape, F["att_ctx"].shape)
    sd = parity_data.state_dict("att_cross_sd")
    assert original.assign(list(original.cross_attention_entries(attn)), sd) == 4
    out, weights = attn(F["att_x"], F["att_ctx"], need_weights=True)
    assert_close("att_cross_out", out, F["att_cross_out"])
    assert_close("att_cross_attn", weights, F["att_cross_attn"])


# --- e. k-means -------------------------------------------------------------------------------


def _kmeans_euclidean(max_iters: int, tol: float) -> np.ndarray:
    x = F["km_x"]
    start = x[:, F["km_euc_init_idx"]]  # the original's one index set for the whole batch
    centroids, _ = kmeans(x, start, "euclidean", max_iters=max_iters, tol=tol)
    return centroids.numpy()


def test_kmeans_euclidean_from_the_original_initial_centroids():
    assert_close("km_euc_centroids", _kmeans_euclidean(20, 1e-6), F["km_euc_centroids"])
    assert_close(
        "km_euc_centroids_defaults", _kmeans_euclidean(10, 1e-8), F["km_euc_centroids_defaults"]
    )
    by_iters = F["km_euc_centroids_by_max_iters"]
    for m in range(1, len(by_iters) + 1):
        assert_close(
            f"km_euc_centroids_by_max_iters[{m - 1}]", _kmeans_euclidean(m, 1e-6), by_iters[m - 1]
        )


def test_kmeans_cosine_from_the_original_initial_centroids():
    """The original's spherical k-means (seed 1: no cluster empties, so no NaN)."""
    x = F["km_cos_x_normalized"]
    start = np.take_along_axis(x, F["km_cos_init_idx"][:, :, None], axis=1)  # per image
    centroids, _ = kmeans(x, start, "cosine", max_iters=20, tol=1e-6)
    assert_close("km_cos_centroids", centroids, F["km_cos_centroids"])
