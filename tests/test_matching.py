"""The in-graph Hungarian solver against scipy (a test-only oracle) and hand-made cases."""

import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from osc_tf.matching import inverse_permutation, linear_sum_assignment

# One trace for every shape: the oracle sweep runs the plain-ops solver.
_solve_plain = tf.function(
    lambda cost: linear_sum_assignment(cost, jit_compile=False),
    input_signature=[tf.TensorSpec([None, None, None], tf.float64)],
)


def _problems(rng: np.random.Generator, n: int, k: int, m: int) -> np.ndarray:
    """n cost matrices [k, m] cycling through kinds that stress exactness."""
    out = np.empty((n, k, m))
    for i in range(n):
        kind = i % 6
        if kind == 0:  # generic continuous
            c = rng.normal(size=(k, m))
        elif kind == 1:  # many ties
            c = rng.integers(0, 3, size=(k, m)).astype(float)
        elif kind == 2:  # duplicated rows
            c = rng.normal(size=(k, m))
            c[rng.integers(0, k, size=k // 2 + 1)] = c[0]
        elif kind == 3:  # large magnitudes of both signs
            c = rng.normal(size=(k, m)) * 1e6
            c[rng.random((k, m)) < 0.2] = 1e9 * rng.choice([-1.0, 1.0])
        elif kind == 4:  # all equal
            c = np.full((k, m), rng.normal())
        else:  # integers with duplicated columns
            c = rng.integers(-50, 50, size=(k, m)).astype(float)
            c[:, rng.integers(0, m, size=m // 2 + 1)] = c[:, :1]
        out[i] = c
    return out


def _assert_optimal(cost: np.ndarray, cols: np.ndarray, maximize: bool = False) -> None:
    n, k, m = cost.shape
    assert cols.shape == (n, k) and cols.dtype == np.int32
    for c, got in zip(cost, cols, strict=True):
        assert len(set(got.tolist())) == k and got.min() >= 0 and got.max() < m
        rows, best_cols = scipy.optimize.linear_sum_assignment(c, maximize=maximize)
        best = c[rows, best_cols].sum()
        total = c[np.arange(k), got].sum()
        tol = 1e-10 * k * max(np.abs(c).max(), 1.0)
        assert abs(total - best) <= tol, (c, got, best_cols, total, best)


def test_equals_scipy_optimum_on_1152_problems():
    rng = np.random.default_rng(0)
    count = 0
    for k in range(1, 17):
        for m in (k, k + 3):
            cost = _problems(rng, 36, k, m)
            _assert_optimal(cost, _solve_plain(cost).numpy())
            count += len(cost)
    assert count >= 1000


def test_maximize_equals_scipy_maximize():
    rng = np.random.default_rng(1)
    cost = np.concatenate([_problems(rng, 24, 7, 7), rng.normal(size=(24, 7, 7))])
    _assert_optimal(cost, linear_sum_assignment(cost, maximize=True).numpy(), maximize=True)


def test_recovers_hand_made_permutations():
    perms = np.array([[2, 0, 3, 1], [0, 1, 2, 3], [3, 2, 1, 0]])
    similarity = np.eye(4)[perms]  # [3, 4, 4]: row k has its 1 at column perm[k]
    np.testing.assert_array_equal(linear_sum_assignment(similarity, maximize=True), perms)
    np.testing.assert_array_equal(linear_sum_assignment(-similarity), perms)


def test_rectangular_picks_the_cheap_columns():
    # Rows prefer columns 4, 1 and 3 of 6; every other column costs 10.
    cost = np.full((1, 3, 6), 10.0)
    cost[0, 0, 4] = cost[0, 1, 1] = cost[0, 2, 3] = 0.0
    np.testing.assert_array_equal(linear_sum_assignment(cost), [[4, 1, 3]])


def test_eager_function_and_xla_agree_on_float32():
    rng = np.random.default_rng(2)
    cost = np.concatenate([_problems(rng, 12, 6, 6), rng.normal(size=(12, 6, 6))])
    cost = cost.astype(np.float32)
    eager = linear_sum_assignment(cost).numpy()
    plain = linear_sum_assignment(cost, jit_compile=False).numpy()
    xla = tf.function(linear_sum_assignment, jit_compile=True)(tf.constant(cost)).numpy()
    graph = tf.function(lambda c: linear_sum_assignment(c, jit_compile=False))(cost).numpy()
    for cols in (plain, xla, graph):
        np.testing.assert_array_equal(cols, eager)
    _assert_optimal(cost.astype(np.float64), eager)


def test_dynamic_batch_size_in_one_trace():
    fn = tf.function(
        linear_sum_assignment, input_signature=[tf.TensorSpec([None, 5, 5], tf.float32)]
    )
    rng = np.random.default_rng(3)
    for n in (1, 8):
        cost = rng.normal(size=(n, 5, 5)).astype(np.float32)
        _assert_optimal(cost.astype(np.float64), fn(cost).numpy())
    assert len(fn._list_all_concrete_functions_for_serialization()) == 1


def test_no_gradient_through_the_matching():
    cost = tf.Variable(np.random.default_rng(4).normal(size=(2, 3, 3)))
    with tf.GradientTape() as tape:
        cols = linear_sum_assignment(cost)
        total = tf.reduce_sum(tf.gather(cost, cols, batch_dims=2))
    grad = tape.gradient(total, cost)
    # Only the gather is differentiated: d total / d cost is the assignment's indicator.
    np.testing.assert_array_equal(grad.numpy(), tf.one_hot(cols, 3, dtype=tf.float64).numpy())


def test_rejects_more_rows_than_columns_and_wrong_rank():
    with pytest.raises(ValueError, match="K <= M"):
        linear_sum_assignment(np.zeros((1, 4, 3)))
    with pytest.raises(ValueError, match=r"\[B, K, M\]"):
        linear_sum_assignment(np.zeros((4, 3)))


def test_inverse_permutation():
    rng = np.random.default_rng(5)
    perms = np.stack([rng.permutation(7) for _ in range(9)]).astype(np.int32)
    inv = inverse_permutation(perms).numpy()
    np.testing.assert_array_equal(inv, np.argsort(perms, axis=1))
    np.testing.assert_array_equal(
        np.take_along_axis(inv, perms, axis=1), np.tile(np.arange(7), (9, 1))
    )
