"""Run by tests/test_losses_distributed.py in its own process (needs 2 logical CPUs).

Computes every loss, its gradient with respect to a shared variable and to the
inputs, (a) on one device over the global batch and (b) with MirroredStrategy
over two logical CPU devices, each replica holding half the images of both
views; prints one JSON line with the largest relative differences.
"""

import json
import sys

import numpy as np
import tensorflow as tf

CPUS = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    CPUS[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

from osc_tf import losses  # noqa: E402
from osc_tf.matching import linear_sum_assignment  # noqa: E402

B, K, D, REPLICAS = 6, 4, 5, 2  # B images globally


def _loss_fns():
    return {
        "ctr": lambda x, w: losses.global_contrastive(tf.reduce_sum(x, 1) @ w, 0.2),
        "sim": lambda x, w: losses.global_similarity(tf.reduce_sum(x, 1), tf.reduce_sum(x, 1) @ w),
        "ctr_all": lambda x, w: losses.object_contrastive_all(x @ w, 0.3),
        "ctr_img": lambda x, w: losses.object_contrastive_image(x @ w, 0.3),
        "sim_img": lambda x, w: losses.object_similarity(x, x @ w),
        "mse": lambda x, w: losses.reconstruction_mse(x @ w, tf.sin(x)),
    }


def _split(x, sizes):
    """Global two-view [2B, ...] -> per-replica [2b_r, ...] (its view-0 rows; its view-1 rows)."""
    edges = np.cumsum([0, *sizes])
    return [
        np.concatenate([x[a:e], x[B + a : B + e]])
        for a, e in zip(edges[:-1], edges[1:], strict=True)
    ]


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


def _compare(strategy, fn, x, w, sizes):
    """Relative differences between one device and the replicas holding ``sizes`` images."""

    def step(xs):
        with tf.GradientTape() as tape:
            tape.watch(xs)
            loss = fn(xs, w)
        gw, gx = tape.gradient(loss, [w, xs])
        return loss, gw, gx

    single = tf.function(step)(tf.constant(x))
    parts = _split(x, sizes)
    x_dist = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(parts[ctx.replica_id_in_sync_group])
    )
    dist = tf.function(lambda xs: strategy.run(step, args=(xs,)))(x_dist)
    loss_r, gw_r, gx_r = (strategy.experimental_local_results(t) for t in dist)
    gx_r = [g.numpy() for g in gx_r]
    view0 = [g[:b] for g, b in zip(gx_r, sizes, strict=True)]  # [b_r, K, D] each
    view1 = [g[b:] for g, b in zip(gx_r, sizes, strict=True)]
    gx = np.concatenate(view0 + view1)  # [2B, K, D] in the global layout
    return {
        "loss": float(single[0]),
        "loss_rel": _rel(sum(v.numpy() for v in loss_r), single[0]),
        "grad_w_rel": _rel(sum(g.numpy() for g in gw_r), single[1]),
        "grad_x_rel": _rel(gx, single[2]),
    }


def main() -> int:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2 * B, K, D)).astype(np.float32)
    x[B:] = x[:B] + 0.3 * rng.normal(size=(B, K, D)).astype(np.float32)  # views are related
    w = tf.Variable(rng.normal(size=(D, D)).astype(np.float32))
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == REPLICAS
    report = {}
    for name, fn in _loss_fns().items():
        report[name] = _compare(strategy, fn, x, w, [B // 2, B // 2])
    # the gathering losses, and the mean over rows, with unequal replica batches
    for name in ("ctr", "ctr_all", "mse"):
        report[f"{name}_uneven"] = _compare(strategy, _loss_fns()[name], x, w, [B // 3, B - B // 3])

    # The solver itself inside a replica equals the solver on one device.
    cost = rng.normal(size=(REPLICAS * 8, K, K)).astype(np.float32)
    cost_dist = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(cost[ctx.replica_id_in_sync_group * 8 :][:8])
    )
    cols = strategy.run(tf.function(linear_sum_assignment), args=(cost_dist,))
    cols = np.concatenate([c.numpy() for c in strategy.experimental_local_results(cols)])
    report["matching_equal"] = bool(np.array_equal(cols, linear_sum_assignment(cost).numpy()))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
