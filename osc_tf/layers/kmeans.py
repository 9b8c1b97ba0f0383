"""Batched k-means in graph ops: random or k-means++ initialisation, Lloyd iterations.

Runs per image on ``x [B, N, D]`` in float32, inside ``tf.function`` and XLA
(a ``while_loop`` with a static iteration bound and an early stop). Used by
``KMeansQueries``; kept as functions so they can be tested on hand-made
inputs.

Distances: ``"euclidean"`` is the squared Euclidean distance; ``"cosine"``
is ``1 - cos`` on unit-normalised vectors (spherical k-means: centroids are
re-normalised means).
"""

import tensorflow as tf
from keras import ops

from osc_tf.layers import stateless_random

DISTANCES = ("euclidean", "cosine")
_EPS = 1e-12


def _check(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")


def _normalize(x):
    """Unit vectors along the last axis; zero vectors stay zero (never NaN)."""
    sq = ops.sum(ops.square(x), axis=-1, keepdims=True)
    return x * ops.rsqrt(ops.maximum(sq, _EPS))


def prepare(x, distance: str):
    """The space k-means runs in: ``x`` itself, or unit vectors for cosine."""
    _check(distance)
    x = ops.cast(x, "float32")
    return _normalize(x) if distance == "cosine" else x


def pairwise_distance(x, centroids, distance: str):
    """Distances ``[B, N, K]`` between points ``[B, N, D]`` and centroids ``[B, K, D]``.

    Both already in the k-means space (see ``prepare``).
    """
    _check(distance)
    dot = ops.einsum("bnd,bkd->bnk", x, centroids)  # [B, N, K]
    if distance == "cosine":
        return 1.0 - dot
    x_sq = ops.sum(ops.square(x), axis=-1)[:, :, None]  # [B, N, 1]
    c_sq = ops.sum(ops.square(centroids), axis=-1)[:, None, :]  # [B, 1, K]
    return ops.maximum(x_sq - 2.0 * dot + c_sq, 0.0)


def kmeans_plus_plus_init(x, num_clusters, distance: str, seed: int = 0):
    """Per-image k-means++ seeding: K distinct tokens of each image.

    The first centre is a uniformly random token; each next one is drawn with
    probability proportional to its distance to the nearest centre so far
    (Gumbel-max on the log-distance, so tokens already chosen have
    probability 0 and centres are distinct whenever the image has at least K
    distinct tokens). All draws come from one stateless op with the integer
    ``seed`` (a compile-time constant: under XLA a seed computed at run time
    gives other numbers than eagerly, measured on TF 2.21 CPU).

    Args:
        x: ``[B, N, D]`` points (any float dtype; the k-means space is float32).
        num_clusters: K, a Python int (static shapes, XLA) or an int32 scalar
            tensor (e.g. an exported model's ``num_slots`` input).
        distance: ``"euclidean"`` or ``"cosine"``.
        seed: integer seed.

    Returns:
        Centroids ``[B, K, D]`` in the k-means space.
    """
    x = prepare(x, distance)
    batch, num_points, dim = tf.shape(x)[0], tf.shape(x)[1], x.shape[-1]
    first = stateless_random.randint((batch, 1), seed, num_points)  # [B, 1]
    uniforms = stateless_random.uniform(
        (num_clusters - 1, batch, num_points), seed + 1, minval=1e-20
    )  # [K-1, B, N]
    centre = ops.take_along_axis(x, first[:, :, None], axis=1)  # [B, 1, D]
    nearest = pairwise_distance(x, centre, distance)[:, :, 0]  # [B, N]
    slot = tf.range(num_clusters)  # [K]
    centroids = tf.where(
        (slot == 0)[None, :, None], centre, tf.zeros(tf.stack([batch, tf.size(slot), dim]))
    )  # [B, K, D]

    def body(i, centroids, nearest):
        gumbel = -ops.log(-ops.log(uniforms[i - 1]))  # [B, N]
        score = ops.where(nearest > 0.0, ops.log(ops.maximum(nearest, _EPS)) + gumbel, -1e30)
        index = ops.argmax(score, axis=1)[:, None]  # [B, 1]
        centre = ops.take_along_axis(x, index[:, :, None], axis=1)  # [B, 1, D]
        centroids = tf.where((slot == i)[None, :, None], centre, centroids)  # [B, K, D]
        nearest = ops.minimum(nearest, pairwise_distance(x, centre, distance)[:, :, 0])
        return i + 1, centroids, nearest

    _, centroids, _ = tf.while_loop(
        lambda i, *_: i < num_clusters, body, (tf.constant(1), centroids, nearest)
    )
    return centroids


def random_init(x, num_clusters, distance: str, seed=0):
    """K distinct random tokens, the same indices for every image (the original's draw).

    The original study draws ``numpy.random.choice(N, K, replace=False)`` once per
    call and gathers those tokens of every image of the batch.

    Args:
        x: ``[B, N, D]`` points.
        num_clusters: K <= N (Python int or int32 scalar tensor).
        distance: ``"euclidean"`` or ``"cosine"``.
        seed: int (fixed draw) or ``keras.random.SeedGenerator`` (a new draw per call).

    Returns:
        Centroids ``[B, K, D]`` in the k-means space.
    """
    x = prepare(x, distance)
    scores = stateless_random.uniform((tf.shape(x)[1],), seed)  # [N]
    _, index = tf.math.top_k(scores, k=num_clusters)  # K distinct, uniformly random
    return tf.gather(x, index, axis=1)  # [B, K, D]


def _assign(x, centroids, distance: str):
    """Index ``[B, N]`` of the nearest centroid of every point."""
    return ops.argmin(pairwise_distance(x, centroids, distance), axis=-1)


def _update(x, centroids, distance: str):
    """One Lloyd step; an empty cluster keeps its previous centroid."""
    num_clusters = tf.shape(centroids)[1]
    onehot = tf.one_hot(_assign(x, centroids, distance), num_clusters)  # [B, N, K]
    counts = ops.sum(onehot, axis=1)[:, :, None]  # [B, K, 1]
    means = ops.einsum("bnk,bnd->bkd", onehot, x) / ops.maximum(counts, 1.0)  # [B, K, D]
    keep = counts > 0.0
    if distance == "cosine":
        # Members that cancel out give a zero mean: keep the previous centroid too.
        keep = ops.logical_and(keep, ops.sum(ops.square(means), -1, keepdims=True) > _EPS)
        means = _normalize(means)
    return ops.where(keep, means, centroids)


def kmeans(x, centroids, distance: str, max_iters: int = 20, tol: float = 1e-6):
    """Lloyd's k-means per image from given initial centroids.

    Iterates until the largest change of any centroid coordinate, over the whole
    batch, is below ``tol`` (the original's test) or ``max_iters`` steps were
    taken. Empty clusters keep their previous centroid, so the result is never NaN.

    Args:
        x: ``[B, N, D]`` points.
        centroids: ``[B, K, D]`` initial centroids in the k-means space.
        distance: ``"euclidean"`` or ``"cosine"``.
        max_iters: static bound on the number of steps.
        tol: early-stop threshold.

    Returns:
        ``(centroids [B, K, D], assignments [B, N] int)`` in the k-means space.
    """
    x = prepare(x, distance)
    centroids = ops.cast(centroids, "float32")
    if distance == "cosine":
        centroids = _normalize(centroids)

    def cond(c, move):
        return move > tol

    def body(c, move):
        new = _update(x, c, distance)
        move = ops.max(ops.abs(new - c))
        return new, move

    init_move = ops.convert_to_tensor(float("inf"), dtype="float32")
    centroids, _ = ops.while_loop(cond, body, (centroids, init_move), maximum_iterations=max_iters)
    return centroids, _assign(x, centroids, distance)
