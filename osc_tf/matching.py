"""Batched exact linear-sum assignment (Hungarian matching) in TensorFlow ops.

The solver is the shortest-augmenting-path method of Jonker and Volgenant in the
form described by Crouse ("On implementing 2D rectangular assignment
algorithms", IEEE TAES 2016): rows are added one at a time; for each new row a
Dijkstra search over reduced costs finds the cheapest augmenting path to a free
column, the dual potentials are updated and the path is flipped. Every problem
of the batch runs the same loops; a problem that has finished its search simply
stops changing (masked updates), so the batch costs as much as its slowest
member.

Everything is plain TensorFlow (``tf.while_loop``, ``tf.gather``, ``tf.where``):
it runs eagerly, in ``tf.function``, under ``jit_compile=True`` and inside a
``tf.distribute`` replica, without a host round trip. The cost is
stop-gradient: matching is never differentiated.
"""

import tensorflow as tf


def linear_sum_assignment(
    cost: tf.Tensor, maximize: bool = False, jit_compile: bool = True
) -> tf.Tensor:
    """Solves a batch of rectangular assignment problems exactly.

    Args:
        cost: [B, K, M] real costs with K <= M, computed in float64. Costs must be
            finite (non-finite entries do not hang the loops, but the result is unspecified).
        maximize: if True, maximise the total instead of minimising it.
        jit_compile: run the solver as its own XLA-compiled function (compiled
            once per input shape), also when the caller is eager or an
            uncompiled ``tf.function``; inside an XLA-compiled caller it is
            inlined either way. False runs it as ordinary TensorFlow ops.

    Returns:
        int32 [B, K]: ``cols[b, k]`` is the column assigned to row k of problem b.
        The columns of a problem are distinct and ``sum_k cost[b, k, cols[b, k]]``
        is optimal (equal to ``scipy.optimize.linear_sum_assignment``'s optimum).
    """
    cost = tf.stop_gradient(tf.convert_to_tensor(cost))
    if cost.shape.rank is not None and cost.shape.rank != 3:
        raise ValueError(f"cost must be [B, K, M], got shape {cost.shape}")
    k_static, m_static = cost.shape[1], cost.shape[2]
    if k_static is not None and m_static is not None and k_static > m_static:
        raise ValueError(f"need K <= M (rows <= columns), got K={k_static}, M={m_static}")
    cost = tf.cast(cost, tf.float64)
    if maximize:
        cost = -cost
    return (_solve_compiled if jit_compile else _solve)(cost)


def _solve(cost: tf.Tensor) -> tf.Tensor:
    """Minimum-cost assignment of float64 cost [B, K, M] -> int32 [B, K]."""
    # A constant per row changes no assignment; it keeps reduced costs small.
    cost = cost - tf.reduce_min(cost, axis=2, keepdims=True)  # [B, K, M]
    shape = tf.shape(cost)
    batch, rows, cols = shape[0], shape[1], shape[2]
    u = tf.zeros([batch, rows], tf.float64)  # row potentials [B, K]
    v = tf.zeros([batch, cols], tf.float64)  # column potentials [B, M]
    col4row = -tf.ones([batch, rows], tf.int32)  # [B, K]
    row4col = -tf.ones([batch, cols], tf.int32)  # [B, M]

    def add_row(cur, u, v, col4row, row4col):
        spc, path, sc, sink, min_val = _shortest_path(cost, u, v, row4col, cur)
        # Dual update: rows on the search tree and scanned columns.
        row_ids = tf.range(rows)[None, :]  # [1, K]
        # Rows reached by the search besides cur: owners of the scanned columns
        # (one_hot of -1, a free column, is all False).
        owners = tf.one_hot(row4col, rows, on_value=True, off_value=False)  # [B, M, K]
        sr = tf.reduce_any(owners & sc[:, :, None], axis=1)  # [B, K]
        spc_at_row = tf.gather(spc, tf.maximum(col4row, 0), batch_dims=1)  # [B, K]
        is_cur = tf.equal(row_ids, cur)  # [1, K]
        u = u + tf.where(is_cur, min_val[:, None], 0.0)
        u = u + tf.where(sr & ~is_cur, min_val[:, None] - spc_at_row, 0.0)
        v = v - tf.where(sc, min_val[:, None] - spc, 0.0)
        col4row, row4col = _augment(path, sink, col4row, row4col, cur)
        return cur + 1, u, v, col4row, row4col

    _, _, _, col4row, _ = tf.while_loop(
        lambda cur, *_: cur < rows,
        add_row,
        (tf.constant(0, tf.int32), u, v, col4row, row4col),
    )
    return col4row


_solve_compiled = tf.function(_solve, jit_compile=True, reduce_retracing=True, autograph=False)


def _shortest_path(cost, u, v, row4col, cur):
    """Dijkstra search from row ``cur`` to the nearest free column, per problem.

    Returns shortest reduced path costs spc [B, M], predecessor rows path [B, M],
    scanned columns sc [B, M] (bool), the free column reached sink [B] and the
    path length min_val [B].
    """
    shape = tf.shape(cost)
    batch, cols = shape[0], shape[2]
    inf = tf.constant(float("inf"), tf.float64)
    free = row4col < 0  # [B, M]

    def step(done, row, min_val, spc, path, sc, sink):
        active = ~done  # [B]
        cost_row = tf.gather(cost, row, batch_dims=1)  # [B, M]
        u_row = tf.gather(u, row, batch_dims=1)  # [B]
        reduced = min_val[:, None] + cost_row - u_row[:, None] - v  # [B, M]
        better = active[:, None] & ~sc & (reduced < spc)
        path = tf.where(better, row[:, None], path)
        spc = tf.where(better, reduced, spc)
        open_spc = tf.where(sc, inf, spc)  # [B, M]
        lowest = tf.reduce_min(open_spc, axis=1)  # [B]
        is_lowest = tf.equal(open_spc, lowest[:, None]) & ~sc
        # Among equally short columns prefer a free one: the search ends sooner.
        score = tf.cast(is_lowest, tf.int32) * 2 + tf.cast(is_lowest & free, tf.int32)
        col = tf.argmax(score, axis=1, output_type=tf.int32)  # [B]
        min_val = tf.where(active, lowest, min_val)
        sc = sc | (tf.one_hot(col, cols, on_value=True, off_value=False) & active[:, None])
        owner = tf.gather(row4col, col, batch_dims=1)  # [B]
        found = active & (owner < 0)
        sink = tf.where(found, col, sink)
        row = tf.where(active & (owner >= 0), owner, row)
        return done | found, row, min_val, spc, path, sc, sink

    init = (
        tf.zeros([batch], tf.bool),
        tf.fill([batch], cur),
        tf.zeros([batch], tf.float64),
        tf.fill([batch, cols], inf),
        tf.fill([batch, cols], cur),
        tf.zeros([batch, cols], tf.bool),
        tf.zeros([batch], tf.int32),
    )
    _, _, min_val, spc, path, sc, sink = tf.while_loop(
        lambda done, *_: tf.reduce_any(~done), step, init, maximum_iterations=cols
    )
    return spc, path, sc, sink, min_val


def _augment(path, sink, col4row, row4col, cur):
    """Flips the augmenting path ending at ``sink`` back to row ``cur``, per problem."""
    rows, cols = tf.shape(col4row)[1], tf.shape(row4col)[1]

    def step(active, col, col4row, row4col):
        row = tf.gather(path, col, batch_dims=1)  # [B]
        previous = tf.gather(col4row, row, batch_dims=1)  # [B]; -1 for row cur
        hit_col = tf.one_hot(col, cols, on_value=True, off_value=False) & active[:, None]
        hit_row = tf.one_hot(row, rows, on_value=True, off_value=False) & active[:, None]
        row4col = tf.where(hit_col, row[:, None], row4col)
        col4row = tf.where(hit_row, col[:, None], col4row)
        still = active & (row != cur)
        return still, tf.where(still, previous, col), col4row, row4col

    init = (tf.ones_like(sink, tf.bool), sink, col4row, row4col)
    _, _, col4row, row4col = tf.while_loop(
        lambda active, *_: tf.reduce_any(active), step, init, maximum_iterations=rows
    )
    return col4row, row4col


def inverse_permutation(perm: tf.Tensor) -> tf.Tensor:
    """Inverts a batch of permutations.

    Args:
        perm: int [B, K], each row a permutation of 0..K-1.

    Returns:
        int32 [B, K] ``inv`` with ``inv[b, perm[b, k]] = k``.
    """
    return tf.argsort(perm, axis=-1, stable=True, direction="ASCENDING")
