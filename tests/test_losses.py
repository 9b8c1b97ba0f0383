"""The five losses: known values, a loop-by-loop numpy oracle, gradients, XLA."""

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from osc_tf import losses

T = 0.1


# --- numpy oracle: every definition written out row by row ----------------------------


def _l2n(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-10)


def _ce(row, target):
    finite = row[np.isfinite(row)]
    m = finite.max()
    return m + np.log(np.exp(finite - m).sum()) - row[target]


def _match(a, b):
    """scipy's matching of view-0 slots a [K, D] to view-1 slots b [K, D] by max cosine."""
    rows, cols = scipy.optimize.linear_sum_assignment(a @ b.T, maximize=True)
    assert np.array_equal(rows, np.arange(len(a)))
    return cols


def ref_global_contrastive(p, t):
    z, n = _l2n(p), len(p)
    losses_ = []
    for i in range(n):
        row = z[i] @ z.T / t
        row[i] = -np.inf
        losses_.append(_ce(row, (i + n // 2) % n))
    return np.mean(losses_)


def ref_global_similarity(f, p):
    n = len(f)
    f, p = _l2n(f), _l2n(p)
    return -np.mean([f[(i + n // 2) % n] @ p[i] for i in range(n)])


def ref_object_contrastive_all(s, t):
    z = _l2n(s)
    b2, k, e = z.shape
    b = b2 // 2
    flat = z.reshape(-1, e)
    out = []
    for img in range(b):
        cols = _match(z[img], z[b + img])
        for slot in range(k):
            for view, other, target_slot in ((0, 1, cols[slot]), (1, 0, np.argsort(cols)[slot])):
                own = (view * b + img) * k + slot
                row = flat[own] @ flat.T / t
                row[own] = -np.inf
                out.append(_ce(row, (other * b + img) * k + target_slot))
    return np.mean(out)


def ref_object_contrastive_image(s, t):
    z = _l2n(s)
    b, k = z.shape[0] // 2, z.shape[1]
    out = []
    for img in range(b):
        z0, z1 = z[img], z[b + img]
        cols = _match(z0, z1)
        inv = np.argsort(cols)
        for slot in range(k):
            row = np.concatenate([z0[slot] @ z0.T, z0[slot] @ z1.T]) / t
            row[slot] = -np.inf
            out.append(_ce(row, k + cols[slot]))
            row = np.concatenate([z1[slot] @ z0.T, z1[slot] @ z1.T]) / t
            row[k + slot] = -np.inf
            out.append(_ce(row, inv[slot]))
    return np.mean(out)


def ref_object_similarity(f, p):
    fh, ph = _l2n(f), _l2n(p)
    b, k = f.shape[0] // 2, f.shape[1]
    sims = []
    for img in range(b):
        cols = _match(fh[img], fh[b + img])
        inv = np.argsort(cols)
        for slot in range(k):
            sims.append(ph[img, slot] @ fh[b + img, cols[slot]])
            sims.append(ph[b + img, slot] @ fh[img, inv[slot]])
    return (1 - np.mean(sims)) / 2


# --- known values -----------------------------------------------------------------------


def _two_views(x):
    return np.concatenate([x, x])


def test_collapsed_inputs():
    b, k, e = 5, 4, 6
    same = np.ones((2 * b, e))
    slots = np.ones((2 * b, k, e))
    np.testing.assert_allclose(losses.global_contrastive(same, T), np.log(2 * b - 1), rtol=1e-12)
    np.testing.assert_allclose(losses.object_contrastive_all(slots, T), np.log(2 * b * k - 1))
    np.testing.assert_allclose(losses.object_contrastive_image(slots, T), np.log(2 * k - 1))
    np.testing.assert_allclose(losses.global_similarity(same, same), -1.0)
    np.testing.assert_allclose(losses.object_similarity(slots, slots), 0.0, atol=1e-15)


def test_ideal_inputs():
    # Views identical, distinct images (and slots) orthogonal.
    b, k, t = 3, 2, 0.2
    ideal = _two_views(np.eye(b) * 3.0)  # [2B, E=B], not unit length on purpose
    np.testing.assert_allclose(
        losses.global_contrastive(ideal, t), np.log(np.exp(1 / t) + 2 * b - 2) - 1 / t
    )
    slots = _two_views(np.eye(b * k).reshape(b, k, b * k))  # [2B, K, BK]
    np.testing.assert_allclose(
        losses.object_contrastive_all(slots, t), np.log(np.exp(1 / t) + 2 * b * k - 2) - 1 / t
    )
    np.testing.assert_allclose(
        losses.object_contrastive_image(slots, t), np.log(np.exp(1 / t) + 2 * k - 2) - 1 / t
    )
    np.testing.assert_allclose(losses.global_similarity(ideal, -ideal), 1.0)
    np.testing.assert_allclose(losses.object_similarity(slots, -slots), 1.0)


def test_hand_built_permutations_are_matched():
    # View 1 holds view 0's orthonormal slots in a known order per image.
    b, k, t = 3, 4, 0.1
    view0 = np.eye(b * k).reshape(b, k, b * k)
    perms = np.array([[2, 0, 3, 1], [0, 1, 2, 3], [3, 2, 1, 0]])  # view-0 slot s -> view-1 perms[s]
    view1 = np.stack([view0[i][np.argsort(perms[i])] for i in range(b)])
    slots = np.concatenate([view0, view1])
    for fn in (losses.object_contrastive_all, losses.object_contrastive_image):
        loss, cols = fn(slots, t, return_matching=True)
        np.testing.assert_array_equal(cols, perms)
    # The matched positives make every CE row its ideal value.
    np.testing.assert_allclose(
        losses.object_contrastive_image(slots, t), np.log(np.exp(1 / t) + 2 * k - 2) - 1 / t
    )
    np.testing.assert_allclose(
        losses.object_contrastive_all(slots, t), np.log(np.exp(1 / t) + 2 * b * k - 2) - 1 / t
    )
    # sim_img matches on the features: projections equal to them give cosine 1.
    loss, cols = losses.object_similarity(slots, slots, return_matching=True)
    np.testing.assert_array_equal(cols, perms)
    np.testing.assert_allclose(loss, 0.0, atol=1e-15)


# --- the oracle on random inputs --------------------------------------------------------


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    b, k, d = 4, 5, 6
    slots = rng.normal(size=(2 * b, k, d))
    slots[b:] = slots[:b][:, rng.permutation(k)] + 0.5 * rng.normal(size=(b, k, d))
    return {
        "features": rng.normal(size=(2 * b, d)),
        "projections": rng.normal(size=(2 * b, d)),
        "slot_features": slots,
        "slot_projections": slots + 0.3 * rng.normal(size=slots.shape),
    }


def test_values_equal_the_numpy_oracle(inputs):
    f, p = inputs["features"], inputs["projections"]
    sf, sp = inputs["slot_features"], inputs["slot_projections"]
    cases = [
        (losses.global_contrastive(p, 0.3), ref_global_contrastive(p, 0.3)),
        (losses.global_similarity(f, p), ref_global_similarity(f, p)),
        (losses.object_contrastive_all(sp, 0.2), ref_object_contrastive_all(sp, 0.2)),
        (losses.object_contrastive_image(sp, 0.2), ref_object_contrastive_image(sp, 0.2)),
        (losses.object_similarity(sf, sp), ref_object_similarity(sf, sp)),
    ]
    for got, want in cases:
        assert got.dtype == tf.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_matching_is_scipys_on_the_right_cosines(inputs):
    fs, ps = _l2n(inputs["slot_features"]), _l2n(inputs["slot_projections"])
    b = len(fs) // 2
    _, cols_ctr = losses.object_contrastive_image(ps, return_matching=True)
    _, cols_sim = losses.object_similarity(fs, ps, return_matching=True)
    np.testing.assert_array_equal(cols_ctr, [_match(ps[i], ps[b + i]) for i in range(b)])
    np.testing.assert_array_equal(cols_sim, [_match(fs[i], fs[b + i]) for i in range(b)])
    assert not np.array_equal(cols_ctr, cols_sim)  # the two losses match different things


# --- gradients and compilation ----------------------------------------------------------


def _small(rng, *shape):
    return tf.constant(rng.normal(size=shape))


GRAD_CASES = {
    "ctr": (lambda p, f: losses.global_contrastive(p, 0.5), (6, 3)),
    "sim": (lambda p, f: losses.global_similarity(f, p), (6, 3)),
    "ctr_all": (lambda p, f: losses.object_contrastive_all(p, 0.5), (4, 3, 3)),
    "ctr_img": (lambda p, f: losses.object_contrastive_image(p, 0.5), (4, 3, 3)),
    "sim_img": (lambda p, f: losses.object_similarity(f, p), (4, 3, 3)),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_gradients_match_finite_differences(name):
    fn, shape = GRAD_CASES[name]
    rng = np.random.default_rng(1)
    p, f = _small(rng, *shape), _small(rng, *shape)
    theoretical, numerical = tf.test.compute_gradient(lambda p: fn(p, f), [p], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-8)
    assert np.abs(theoretical[0]).max() > 1e-3


@pytest.mark.parametrize("name", ["sim", "sim_img"])
def test_no_gradient_into_similarity_targets(name):
    fn, shape = GRAD_CASES[name]
    rng = np.random.default_rng(2)
    p, f = _small(rng, *shape), _small(rng, *shape)
    with tf.GradientTape() as tape:
        tape.watch(f)
        loss = fn(p, f)
    assert tape.gradient(loss, f) is None


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_xla_equals_eager(name):
    fn, shape = GRAD_CASES[name]
    rng = np.random.default_rng(3)
    p, f = (tf.cast(_small(rng, *shape), tf.float32) for _ in range(2))
    compiled = tf.function(fn, jit_compile=True)
    np.testing.assert_allclose(compiled(p, f).numpy(), fn(p, f).numpy(), rtol=1e-5)


def test_low_precision_inputs_are_computed_in_float32():
    x = tf.ones([4, 3], tf.bfloat16)
    loss = losses.global_contrastive(x)
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), np.log(3), rtol=1e-6)


def test_similarity_needs_equal_widths():
    with pytest.raises(ValueError, match="same last dimension"):
        losses.global_similarity(np.ones((4, 3)), np.ones((4, 5)))
