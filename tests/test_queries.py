"""Object queries: harness, Gaussian statistics, k-means on hand-made clusters."""

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.layers import kmeans as km
from osc_tf.layers.queries import GaussianQueries, KMeansQueries, LearnedQueries
from tests.layer_harness import check_layer

RNG = np.random.default_rng(0)
TOKENS = RNG.normal(size=(2, 12, 8))


def test_learned_queries_harness_and_fixed_count(tmp_path):
    layer, out = check_layer(
        LearnedQueries,
        {"num_slots": 3},
        (TOKENS,),
        tmp_path,
        expected_output_shapes=(2, 3, 8),
        expected_num_trainable_weights=1,
        expected_num_params=3 * 8,
    )
    np.testing.assert_array_equal(out[0], out[1])  # the same queries for every image
    np.testing.assert_array_equal(out[0], np.array(layer.queries)[0])
    assert layer(TOKENS, num_slots=3).shape == (2, 3, 8)
    with pytest.raises(ValueError, match="fixed number of slots K=3; num_slots=5"):
        layer(TOKENS, num_slots=5)


@pytest.mark.parametrize("num_components", [1, 4])
def test_gaussian_queries_harness(tmp_path, num_components):
    layer, out = check_layer(
        GaussianQueries,
        {"num_slots": 3, "num_components": num_components, "seed": 7},
        (TOKENS,),
        tmp_path,
        expected_output_shapes=(2, 3, 8),
        expected_num_trainable_weights=2,
        expected_num_params=2 * num_components * 8,
    )
    assert not np.allclose(out[0], out[1])  # noise per image
    # The initial mu (the harness above has trained `layer` a step): U(±sqrt(6/D)).
    fresh = GaussianQueries(num_slots=3, num_components=num_components)
    fresh(TOKENS)
    assert np.all(np.abs(np.array(fresh.mu)) <= np.sqrt(6 / 8))
    assert layer(TOKENS, num_slots=6).shape == (2, 6, 8)


def test_gaussian_queries_match_mu_and_sigma_and_carry_gradients():
    layer = GaussianQueries(num_slots=50, num_components=1, seed=1)
    tokens = np.zeros((400, 4, 8), "float32")
    layer(tokens)
    mu, log_sigma = RNG.normal(size=(1, 8)), RNG.normal(size=(1, 8)) * 0.5
    layer.mu.assign(mu)
    layer.log_sigma.assign(log_sigma)
    with tf.GradientTape() as tape:
        samples = layer(tokens, training=True)  # 20 000 draws per dimension
        loss = tf.reduce_mean(samples)
    samples = np.array(samples).reshape(-1, 8)
    sigma = np.exp(log_sigma[0])
    standard_error = sigma / np.sqrt(len(samples))
    np.testing.assert_array_less(np.abs(samples.mean(0) - mu[0]), 5 * standard_error)
    np.testing.assert_allclose(samples.std(0), sigma, rtol=0.03)
    grad_mu, grad_log_sigma = tape.gradient(loss, [layer.mu, layer.log_sigma])
    np.testing.assert_allclose(grad_mu, np.full((1, 8), 1 / 8), rtol=1e-4)  # d mean / d mu
    # d mean / d log_sigma_d = mean(sigma_d · eps_d) / D = (sample mean_d - mu_d) / D
    expected = (samples.mean(0) - mu[0]) / 8
    np.testing.assert_allclose(grad_log_sigma[0], expected, rtol=1e-3, atol=1e-6)


def test_gaussian_mixture_picks_components_uniformly():
    layer = GaussianQueries(num_slots=10, num_components=4, seed=2)
    tokens = np.zeros((300, 4, 3), "float32")
    layer(tokens)
    layer.mu.assign(np.arange(4)[:, None] * np.array([[10.0, 0.0, 0.0]]))
    layer.log_sigma.assign(np.full((4, 3), np.log(0.1)))
    samples = np.array(layer(tokens, training=True)).reshape(-1, 3)
    component = np.rint(samples[:, 0] / 10).astype(int)
    np.testing.assert_allclose(samples[:, 0], 10 * component, atol=0.6)  # within 6 sigma
    counts = np.bincount(component, minlength=4) / len(component)
    np.testing.assert_allclose(counts, 0.25, atol=0.03)
    np.testing.assert_allclose(samples.reshape(300, 10, 3).std(axis=(0, 1))[1:], 0.1, rtol=0.05)


def test_gaussian_queries_random_in_training_reproducible_in_inference():
    layer = GaussianQueries(num_slots=3, seed=4)
    train = [np.array(layer(TOKENS, training=True)) for _ in range(2)]
    assert not np.allclose(train[0], train[1])  # a new draw every training step
    np.testing.assert_array_equal(layer(TOKENS), layer(TOKENS))
    twin = GaussianQueries(num_slots=3, seed=4)
    twin(TOKENS)
    twin.set_weights(layer.get_weights())
    np.testing.assert_array_equal(twin(TOKENS), layer(TOKENS))


def _clusters(num_clusters, points_per_cluster, dim, spread=0.05, seed=0):
    """Points around well-separated centres; returns (points [1, N, D], labels [N])."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_clusters, dim)) * 5
    labels = np.repeat(np.arange(num_clusters), points_per_cluster)
    points = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    order = rng.permutation(len(labels))
    return points[order][None].astype("float32"), labels[order], centres


def _same_partition(a, b):
    """True when two labelings define the same partition of the points."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_kmeans_recovers_well_separated_clusters(distance):
    batch = [_clusters(4, 10, 6, seed=s) for s in range(3)]
    points = np.concatenate([b[0] for b in batch])  # [3, 40, 6]
    init = km.kmeans_plus_plus_init(points, 4, distance, seed=0)
    centroids, assignments = km.kmeans(points, init, distance)
    for i, (_, labels, centres) in enumerate(batch):
        assert _same_partition(np.array(assignments[i]), labels)
        if distance == "euclidean":
            expected = np.sort(centres, axis=0)
            np.testing.assert_allclose(np.sort(centroids[i], axis=0), expected, atol=0.1)
        else:
            unit = np.array(centroids[i])
            np.testing.assert_allclose(np.linalg.norm(unit, axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_kmeans_empty_cluster_keeps_its_centroid(distance):
    points, labels, centres = _clusters(2, 8, 3)
    far = -50.0 * np.ones((1, 1, 3), "float32") if distance == "euclidean" else None
    if distance == "cosine":  # a direction no point is close to
        far = -np.sum(centres, axis=0, keepdims=True)[None].astype("float32")
        far /= np.linalg.norm(far)
    first_two = points[:, [np.argmax(labels == 0), np.argmax(labels == 1)]]
    init = np.concatenate([km.prepare(first_two, distance), far], axis=1)  # [1, 3, 3]
    centroids, assignments = km.kmeans(points, init, distance)
    assert np.all(np.isfinite(centroids))
    np.testing.assert_allclose(centroids[0, 2], far[0, 0], rtol=1e-6)  # unchanged
    assert not np.any(np.array(assignments) == 2)
    assert _same_partition(np.array(assignments[0]), labels)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_kmeans_more_clusters_than_distinct_points_never_nan(distance):
    points = np.repeat(np.eye(3, 5, dtype="float32")[None], 4, axis=1)  # 3 distinct, N=12
    layer = KMeansQueries(num_slots=5, distance=distance)
    queries = np.array(layer(points))
    assert queries.shape == (1, 5, 5) and np.all(np.isfinite(queries))
    # Every distinct point is a centroid; the extra ones duplicate some of them.
    distinct = {tuple(np.round(q, 5)) for q in queries[0]}
    assert distinct == {tuple(row) for row in np.eye(3, 5)}


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_kmeans_plus_plus_picks_distinct_points(distance):
    points = RNG.normal(size=(4, 20, 6)).astype("float32")
    init = np.array(km.kmeans_plus_plus_init(points, 20, distance, seed=3))
    prepared = np.array(km.prepare(points, distance))
    for i in range(4):  # K = N: every point exactly once
        np.testing.assert_allclose(
            np.sort(init[i], axis=0), np.sort(prepared[i], axis=0), rtol=1e-6
        )


def test_kmeans_iteration_bound_and_early_stop():
    points, labels, _ = _clusters(3, 10, 4)
    first = [np.flatnonzero(labels == c)[i] for c, i in ((0, 0), (0, 1), (1, 0))]
    init = points[:, first]  # two starts in one cluster: needs more than one step
    one_step, _ = km.kmeans(points, init, "euclidean", max_iters=1)
    # A tolerance larger than any move stops the loop after its first step.
    stopped, _ = km.kmeans(points, init, "euclidean", max_iters=50, tol=1e9)
    np.testing.assert_array_equal(stopped, one_step)
    converged, _ = km.kmeans(points, init, "euclidean", max_iters=50)
    longer, _ = km.kmeans(points, init, "euclidean", max_iters=500, tol=0.0)
    np.testing.assert_allclose(converged, longer, atol=1e-6)
    assert not np.allclose(one_step, converged)
    xla = tf.function(lambda x, c: km.kmeans(x, c, "euclidean", 50), jit_compile=True)
    np.testing.assert_allclose(xla(points, init)[0], converged, atol=1e-5)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_kmeans_queries_harness_and_no_gradient(tmp_path, distance):
    points = np.concatenate([_clusters(3, 6, 8, seed=s)[0] for s in range(2)])  # [2, 18, 8]
    layer, out = check_layer(
        KMeansQueries,
        {"num_slots": 3, "distance": distance, "max_iters": 10},
        (points,),
        tmp_path,
        expected_output_shapes=(2, 3, 8),
        expected_num_trainable_weights=0,
        run_training=False,
    )
    assert layer(points, num_slots=5).shape == (2, 5, 8)
    x = tf.constant(points)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(layer(x))
    assert tape.gradient(y, x) is None


@pytest.mark.parametrize(
    "layer",
    [GaussianQueries(num_slots=5, num_components=2), KMeansQueries(num_slots=5)],
    ids=["gaussian", "kmeans"],
)
def test_num_slots_as_a_graph_input(layer):
    """An exported model takes K as an int32 input: one graph serves every K."""
    tokens = tf.random.stateless_normal((2, 16, 8), seed=[1, 2])
    layer(tokens)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 8]), tf.TensorSpec([], tf.int32)])
    def queries(tokens, num_slots):
        return layer(tokens, num_slots=num_slots)

    for k in (1, 3, 7):
        out = queries(tokens, tf.constant(k))
        assert out.shape == (2, k, 8)
        np.testing.assert_allclose(out, layer(tokens, num_slots=k), rtol=1e-6, atol=1e-6)
