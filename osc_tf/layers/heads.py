"""Heads: the MLP of the global function and projections, and cross-attention pooling."""

import keras
from keras import ops

from osc_tf.layers import initializers
from osc_tf.layers.attention import MultiHeadAttention
from osc_tf.layers.feedforward import FeedForward, Perceptron
from osc_tf.layers.normalization import LayerNorm


@keras.saving.register_keras_serializable(package="osc_tf")
class MLPHead(Perceptron):
    """Two-layer perceptron ``Dense -> act -> dropout -> Dense -> dropout`` as a head.

    The original study's defaults: global function ``hidden_mult=2,
    out_bias=True``; global projection ``hidden_mult=2, out_bias=False``;
    object projection ``hidden_mult=4, out_bias=False``. (The transformer blocks'
    feed-forward is ``osc_tf.layers.feedforward.FeedForward``.)

    Args:
        hidden_mult: hidden width as a multiple of the input width D.
        hidden_dim: hidden width; overrides ``hidden_mult`` when given.
        out_dim: output width E; None keeps the input width D.
        activation: a Keras activation name; ``"gelu"`` is the exact (erf) GELU.
        dropout: dropout rate after the activation and after the output layer.
        out_bias: whether the output layer has a bias.
        seed: optional integer seed for dropout.
        init: initialisation scheme of both layers (``osc_tf.layers.initializers``);
            ``"torch"`` (PyTorch's default, as the original's heads) by default.

    Call:
        x: ``[..., D]``.

    Returns:
        ``[..., E]``.
    """

    def __init__(
        self,
        hidden_mult: float = 2.0,
        hidden_dim: int | None = None,
        out_dim: int | None = None,
        activation: str = "gelu",
        dropout: float = 0.0,
        out_bias: bool = True,
        seed: int | None = None,
        init: str = "torch",
        **kwargs,
    ):
        super().__init__(activation, dropout, seed, init, **kwargs)
        self.hidden_mult = hidden_mult
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.out_bias = out_bias

    def widths(self, dim: int) -> tuple[int, int, bool]:
        hidden = self.hidden_dim or int(round(self.hidden_mult * dim))
        return hidden, self.out_dim or dim, self.out_bias

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_mult=self.hidden_mult,
            hidden_dim=self.hidden_dim,
            out_dim=self.out_dim,
            activation=self.activation,
            dropout=self.dropout,
            out_bias=self.out_bias,
            seed=self.seed,
            init=self.init,
        )
        return config


@keras.saving.register_keras_serializable(package="osc_tf")
class CrossAttentionPool(keras.layers.Layer):
    """Pools a set into one vector: a learned query cross-attends the set.

    ``q ← q + MHA(LN(q), LN(x)); q ← q + MLP(LN(q))`` with one learned query
    (normal, std 0.02; projections initialised as ``"vit"``). An alternative to
    average or CLS pooling, set as ``ObjectCentricModel.global_pool``.

    Args:
        num_heads: attention heads.
        mlp_ratio: hidden width of the MLP as a multiple of D.
        qkv_bias: whether the q, k, v projections have a bias.
        seed: optional integer seed (dropout is off; kept for symmetry).

    Call:
        x: ``[B, M, D]`` (backbone tokens or slots).

    Returns:
        ``[B, D]``.
    """

    def __init__(
        self,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.seed = seed
        policy = self.dtype_policy
        self.norm_x = LayerNorm(dtype=policy, name="norm_x")
        self.norm_q = LayerNorm(dtype=policy, name="norm_q")
        self.norm_mlp = LayerNorm(dtype=policy, name="norm_mlp")
        self.attn = MultiHeadAttention(
            num_heads, qkv_bias=qkv_bias, seed=seed, init="vit", dtype=policy
        )
        self.mlp = FeedForward(mlp_ratio, seed=seed, init="vit", dtype=policy)

    def build(self, x_shape):
        dim = x_shape[-1]
        self.query = self.add_weight(
            shape=(1, 1, dim),
            initializer=initializers.token_table(),
            name="query",
        )
        q_shape = (x_shape[0], 1, dim)
        self.norm_x.build(x_shape)
        self.norm_q.build(q_shape)
        self.norm_mlp.build(q_shape)
        self.attn.build(q_shape, x_shape)
        self.mlp.build(q_shape)

    def call(self, x, training=False):
        batch = ops.shape(x)[0]
        q = ops.broadcast_to(ops.cast(self.query, x.dtype), (batch, 1, x.shape[-1]))  # [B, 1, D]
        attended, _ = self.attn(
            self.norm_q(q), self.norm_x(x), training=training, need_weights=False
        )
        q = q + attended
        q = q + self.mlp(self.norm_mlp(q), training=training)
        return q[:, 0]  # [B, D]

    def compute_output_shape(self, x_shape):
        return (x_shape[0], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            seed=self.seed,
        )
        return config
