"""Object queries: learned, sampled from learned Gaussians, or k-means of the tokens.

Every query generator has ``call(tokens, num_slots=None, training=False) -> [B, K, D]``.
"""

import keras
from keras import ops

from osc_tf.layers import stateless_random
from osc_tf.layers.kmeans import kmeans, kmeans_plus_plus_init, random_init


@keras.saving.register_keras_serializable(package="osc_tf")
class LearnedQueries(keras.layers.Layer):
    """K learned query vectors, the same for every image.

    Args:
        num_slots: K.
        stddev: standard deviation of the normal initialiser (0.02: timm's
            ``trunc_normal_(std=0.02)`` as the original, whose cut at ±2 is 100 std).

    Call:
        tokens: ``[B, N, D]`` backbone tokens (only B and D are used).
        num_slots: None or K; any other value is an error (K is fixed).

    Returns:
        ``[B, K, D]``.
    """

    def __init__(self, num_slots: int = 11, stddev: float = 0.02, **kwargs):
        super().__init__(**kwargs)
        if num_slots < 1:
            raise ValueError(f"LearnedQueries.num_slots = {num_slots}: expected an integer >= 1")
        self.num_slots = num_slots
        self.stddev = stddev

    def build(self, tokens_shape):
        self.queries = self.add_weight(
            shape=(1, self.num_slots, tokens_shape[-1]),
            initializer=keras.initializers.RandomNormal(stddev=self.stddev),
            name="queries",
        )

    def call(self, tokens, num_slots=None, training=False):
        if num_slots is not None and num_slots != self.num_slots:
            raise ValueError(
                f"LearnedQueries has a fixed number of slots K={self.num_slots}; "
                f"num_slots={num_slots} was requested. Use GaussianQueries or "
                "KMeansQueries to choose the number of slots at call time."
            )
        batch = ops.shape(tokens)[0]
        queries = ops.cast(self.queries, self.compute_dtype)
        return ops.broadcast_to(queries, (batch, self.num_slots, tokens.shape[-1]))  # [B, K, D]

    def get_config(self):
        config = super().get_config()
        config.update(num_slots=self.num_slots, stddev=self.stddev)
        return config


@keras.saving.register_keras_serializable(package="osc_tf")
class GaussianQueries(keras.layers.Layer):
    """Queries sampled from a uniform mixture of C learned diagonal Gaussians.

    Each query is ``mu_c + exp(log_sigma_c) * eps`` with ``eps ~ N(0, I)``
    drawn per image and per slot and, when C > 1, the component c drawn
    uniformly per image and per slot. Gradients reach ``mu`` and
    ``log_sigma`` (reparameterisation). ``mu`` and ``log_sigma`` ``[C, D]``
    start uniform in ``±sqrt(6/D)``.

    Randomness: ``mu`` and ``log_sigma`` are drawn from the run's seed
    (``keras.utils.set_random_seed``, i.e. ``train.seed``), as the training noise
    is, from a ``keras.random.SeedGenerator`` seeded by it (a new draw every
    step); in inference the noise comes from the fixed integer ``seed``, so the
    same batch gives the same queries on every call and after saving and loading.

    Args:
        num_slots: default K (a call may ask for another).
        num_components: C.
        seed: integer seed of the inference noise.

    Call:
        tokens: ``[B, N, D]`` (only B and D are used).
        num_slots: None (the default K) or any positive K.
        training: Python bool.

    Returns:
        ``[B, K, D]``.
    """

    def __init__(self, num_slots: int = 11, num_components: int = 1, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.num_slots = num_slots
        self.num_components = num_components
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator()  # from the global (run) seed

    def build(self, tokens_shape):
        dim = tokens_shape[-1]
        bound = (6.0 / dim) ** 0.5
        shape = (self.num_components, dim)

        def uniform():  # a new instance per weight: an unseeded one repeats its draw
            return keras.initializers.RandomUniform(-bound, bound)

        # Read in float32 even under a mixed policy (no autocast): sampling runs in float32.
        self.mu = self.add_weight(shape=shape, initializer=uniform(), name="mu", autocast=False)
        self.log_sigma = self.add_weight(
            shape=shape, initializer=uniform(), name="log_sigma", autocast=False
        )

    def call(self, tokens, num_slots=None, training=False):
        num_slots = self.num_slots if num_slots is None else num_slots
        dim = tokens.shape[-1]
        shape = (ops.shape(tokens)[0], num_slots)
        noise_seed = self.seed_generator if training else self.seed
        eps = stateless_random.normal((*shape, dim), noise_seed)  # [B, K, D], float32
        mu = ops.cast(self.mu, "float32")
        sigma = ops.exp(ops.cast(self.log_sigma, "float32"))
        if self.num_components == 1:
            queries = mu[None] + sigma[None] * eps  # [B, K, D]
        else:
            pick_seed = self.seed_generator if training else self.seed + 1
            component = stateless_random.randint(shape, pick_seed, self.num_components)
            onehot = ops.one_hot(component, self.num_components)  # [B, K, C]
            queries = (
                ops.einsum("bkc,cd->bkd", onehot, mu)
                + ops.einsum("bkc,cd->bkd", onehot, sigma) * eps
            )  # [B, K, D]
        return ops.cast(queries, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(num_slots=self.num_slots, num_components=self.num_components, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="osc_tf")
class KMeansQueries(keras.layers.Layer):
    INITS = ("random", "kmeans++")

    """Queries are the k-means centroids of each image's backbone tokens.

    Batched k-means inside the graph (see ``osc_tf.layers.kmeans``): K distinct
    random tokens (``init="random"``, the original's: the same indices for the
    whole batch, drawn anew at every training call, from the fixed ``seed`` at
    inference) or per-image k-means++ (``init="kmeans++"``, always from the fixed
    ``seed``), then Lloyd iterations until no centroid coordinate changes by
    ``tol`` or more, or ``max_iters`` is reached; empty clusters keep their
    previous centroid (never NaN), float32 throughout, no gradient through the
    centroids. With ``distance="cosine"`` it is spherical k-means and the
    queries are unit vectors.

    Args:
        num_slots: default K (a call may ask for another).
        distance: ``"euclidean"`` or ``"cosine"``.
        max_iters: static bound on Lloyd iterations.
        tol: early-stop threshold on the largest centroid change.
        seed: integer seed of the initial draws at inference (and of k-means++);
            in training the random draws come from the run's seed (``train.seed``).
        init: ``"random"`` or ``"kmeans++"``.

    Call:
        tokens: ``[B, N, D]``; needs N >= K.
        num_slots: None (the default K) or any K <= N.

    Returns:
        ``[B, K, D]``.
    """

    def __init__(
        self,
        num_slots: int = 11,
        distance: str = "euclidean",
        max_iters: int = 20,
        tol: float = 1e-6,
        seed: int = 0,
        init: str = "random",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if distance not in ("euclidean", "cosine"):
            raise ValueError(f"distance must be 'euclidean' or 'cosine', got {distance!r}")
        if init not in self.INITS:
            raise ValueError(f"KMeansQueries.init must be one of {self.INITS}, got {init!r}")
        self.num_slots = num_slots
        self.distance = distance
        self.max_iters = max_iters
        self.tol = tol
        self.seed = seed
        self.init = init
        self.seed_generator = keras.random.SeedGenerator()  # from the global (run) seed

    def call(self, tokens, num_slots=None, training=False):
        num_slots = self.num_slots if num_slots is None else num_slots
        x = ops.stop_gradient(ops.cast(tokens, "float32"))
        if (
            isinstance(num_slots, int)
            and tokens.shape[1] is not None
            and num_slots > tokens.shape[1]
        ):
            raise ValueError(f"num_slots={num_slots} exceeds the {tokens.shape[1]} tokens")
        if self.init == "random":
            seed = self.seed_generator if training else self.seed
            start = random_init(x, num_slots, self.distance, seed=seed)
        else:
            start = kmeans_plus_plus_init(x, num_slots, self.distance, seed=self.seed)
        centroids, _ = kmeans(x, start, self.distance, self.max_iters, self.tol)
        return ops.cast(ops.stop_gradient(centroids), self.compute_dtype)  # [B, K, D]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_slots=self.num_slots,
            distance=self.distance,
            max_iters=self.max_iters,
            tol=self.tol,
            seed=self.seed,
            init=self.init,
        )
        return config
