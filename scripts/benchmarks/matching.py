"""Median time of the in-graph Hungarian solver against scipy's per-problem loop.

    python scripts/benchmark.py matching                      # [64, 11, 11], the default batch
    python scripts/benchmark.py matching --batch 32 --slots 7 --repeats 200

Times one call on a [B, K, K] float32 cost (cosines of random unit vectors, as
the object losses produce) inside a ``tf.function``: the solver as plain TF ops
(``jit_compile=False``) and XLA-compiled (``jit_compile=True``, its default),
each after a warm-up call that traces and compiles, and scipy's
``linear_sum_assignment`` looped over the B problems. Also checks that the
totals agree.
"""

import argparse
import functools
import time

import numpy as np
import scipy.optimize
import tensorflow as tf

from osc_tf.matching import linear_sum_assignment


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _scipy_loop(cost: np.ndarray) -> np.ndarray:
    return np.stack(
        [scipy.optimize.linear_sum_assignment(c, maximize=True)[1] for c in cost]
    ).astype(np.int32)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark.py matching", description=__doc__)
    parser.add_argument("--batch", type=int, default=64, help="problems per call (B)")
    parser.add_argument("--slots", type=int, default=11, help="rows = columns (K)")
    parser.add_argument("--repeats", type=int, default=100, help="timed calls per variant")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    z = rng.normal(size=(2, args.batch, args.slots, 16))
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    cost = np.einsum("bkd,bld->bkl", z[0], z[1]).astype(np.float32)  # [B, K, K]
    cost_tf = tf.constant(cost)

    def solve(c, jit_compile):
        return linear_sum_assignment(c, maximize=True, jit_compile=jit_compile)

    graph = tf.function(functools.partial(solve, jit_compile=False))
    xla = tf.function(functools.partial(solve, jit_compile=True))
    reference = _scipy_loop(cost)
    best = np.take_along_axis(cost, reference[..., None], axis=2).sum()
    for name, fn in (("plain TF ops", graph), ("XLA", xla)):
        cols = fn(cost_tf).numpy()  # warm-up: trace and compile
        total = np.take_along_axis(cost, cols[..., None], axis=2).sum()
        if not np.isclose(total, best, rtol=1e-6):
            print(f"{name}: total {total} differs from scipy's {best}")
            return 1

    shape = f"[{args.batch}, {args.slots}, {args.slots}]"
    print(f"median of {args.repeats} calls on {shape} float32, maximize=True:")
    rows = (
        ("scipy.optimize.linear_sum_assignment loop", lambda: _scipy_loop(cost)),
        ("osc_tf, no XLA (jit_compile=False)", lambda: graph(cost_tf).numpy()),
        ("osc_tf, XLA (jit_compile=True, the default)", lambda: xla(cost_tf).numpy()),
    )
    for name, fn in rows:
        print(f"  {name:<45s} {_median_ms(fn, args.repeats):8.3f} ms")
    return 0
