"""Two-layer perceptrons: the transformer feed-forward, and the base the heads share.

``FeedForward`` is the position-wise MLP of the transformer blocks (ViT, decoders,
cross-attention pooling) and of slot attention's residual update; ``MLPHead``
(``osc_tf.layers.heads``) is the global function and the projections. Both are a
``Perceptron``: ``Dense -> activation -> dropout -> Dense -> dropout`` with the
weights ``fc1`` and ``fc2`` (the names ``osc_tf.original.weights`` maps).
"""

import keras

from osc_tf.layers import initializers
from osc_tf.layers.cpu_kernels import gelu
from osc_tf.layers.stateless_random import offset_seed


class Perceptron(keras.layers.Layer):
    """``Dense -> activation -> dropout -> Dense -> dropout``; subclasses set the widths.

    Args:
        activation: a Keras activation name; ``"gelu"`` is the exact (erf) GELU.
        dropout: dropout rate after the activation and after the output layer.
        seed: optional integer seed for dropout.
        init: initialisation scheme of both layers (``osc_tf.layers.initializers``).

    Call:
        x: ``[..., D]``.

    Returns:
        ``[..., E]`` with ``E`` from ``widths``.
    """

    def __init__(self, activation: str, dropout: float, seed: int | None, init: str, **kwargs):
        super().__init__(**kwargs)
        self.init = initializers.check(init, f"{type(self).__name__}.init")
        self.activation = activation
        self.dropout = dropout
        self.seed = seed
        self._activation = gelu if activation == "gelu" else keras.activations.get(activation)
        self.hidden_drop = keras.layers.Dropout(dropout, seed=seed, dtype=self.dtype_policy)
        self.out_drop = keras.layers.Dropout(
            dropout, seed=offset_seed(seed, 1), dtype=self.dtype_policy
        )

    def widths(self, dim: int) -> tuple[int, int, bool]:
        """``(hidden width, output width, output bias)`` for inputs of width ``dim``."""
        raise NotImplementedError

    def build(self, x_shape):
        hidden, out, out_bias = self.widths(x_shape[-1])
        self.fc1 = initializers.dense(
            hidden, x_shape[-1], self.init, name="fc1", dtype=self.dtype_policy
        )
        self.fc1.build(x_shape)
        self.fc2 = initializers.dense(
            out, hidden, self.init, use_bias=out_bias, name="fc2", dtype=self.dtype_policy
        )
        self.fc2.build((*x_shape[:-1], hidden))

    def call(self, x, training=False):
        x = self.hidden_drop(self._activation(self.fc1(x)), training=training)
        return self.out_drop(self.fc2(x), training=training)

    def compute_output_shape(self, x_shape):
        return (*x_shape[:-1], self.widths(x_shape[-1])[1])


@keras.saving.register_keras_serializable(package="osc_tf")
class FeedForward(Perceptron):
    """The transformer feed-forward ``D -> mlp_ratio·D -> D``, with biases.

    Args:
        mlp_ratio: hidden width as a multiple of the input width D.
        activation: a Keras activation name; ``"gelu"`` is the exact (erf) GELU.
        dropout: dropout rate after the activation and after the output layer.
        seed: optional integer seed for dropout.
        init: initialisation scheme of both layers; ``"vit"`` (timm's ViT init,
            as the original's transformer blocks) by default.

    Call:
        x: ``[..., D]``.

    Returns:
        ``[..., D]``.
    """

    def __init__(
        self,
        mlp_ratio: float = 2.0,
        activation: str = "gelu",
        dropout: float = 0.0,
        seed: int | None = None,
        init: str = "vit",
        **kwargs,
    ):
        super().__init__(activation, dropout, seed, init, **kwargs)
        self.mlp_ratio = mlp_ratio

    def widths(self, dim: int) -> tuple[int, int, bool]:
        return int(round(self.mlp_ratio * dim)), dim, True

    def get_config(self):
        config = super().get_config()
        config.update(
            mlp_ratio=self.mlp_ratio,
            activation=self.activation,
            dropout=self.dropout,
            seed=self.seed,
            init=self.init,
        )
        return config
