"""Multi-head scaled dot-product attention shared by the backbone, decoders and heads.

Written out (rather than ``keras.layers.MultiHeadAttention``) so that the
logits and the softmax are always computed in float32 under a mixed-precision
policy, queries and context may have different widths, the per-head attention
weights come back for the object decoders that need them, and callers that do not
(the ViT blocks) get the chunked kernel of ``osc_tf.layers.cpu_kernels`` instead.
"""

import keras
from keras import ops

from osc_tf.layers import cpu_kernels, initializers
from osc_tf.layers.stateless_random import offset_seed

# Auto policy of ``recompute_weights``: keep a call's attention weights for the backward
# pass up to this size (the default model's [128·4, 256, 256] float32 = 128 MiB is kept;
# batch 128 or patch 4 recompute).
KEEP_WEIGHTS_BYTES = 128 * 2**20


@keras.saving.register_keras_serializable(package="osc_tf")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention of a set of queries over a context set.

    ``out = proj(softmax(q kᵀ / sqrt(D / h)) v)`` with ``q = x Wq``,
    ``k = c Wk``, ``v = c Wv`` and ``c = x`` for self-attention; with
    ``scale=False`` the logits are the plain ``q kᵀ`` (the original study's
    self-attention). Logits and softmax run in float32; the softmax is over the
    context axis.

    Args:
        num_heads: number of heads h; must divide D (the query width).
        qkv_bias: whether the q, k, v projections have a bias.
        attn_dropout: dropout rate on the attention weights.
        proj_dropout: dropout rate after the output projection.
        seed: optional integer seed for the dropout layers.
        scale: divide the logits by sqrt(D / h).
        init: initialisation scheme of the projections (``osc_tf.layers.initializers``).
        recompute_weights: with ``need_weights=False`` in training, whether the
            backward pass recomputes the attention weights (``cpu_kernels.attention``:
            less memory, a slower step) rather than keeping them. None: keep them
            when one call's weights take at most ``KEEP_WEIGHTS_BYTES`` (static
            shapes; unknown batch: keep). Outside training nothing is kept.

    Call:
        x: queries ``[B, L, D]``.
        context: ``[B, M, Dc]`` or None for self-attention (``context = x``).
        training: Python bool.
        need_weights: return the attention weights. With False (and no attention
            dropout in training) they are never materialised as a whole and the
            memory-lean ``cpu_kernels.attention`` computes the output.

    Returns:
        ``(out [B, L, D], weights [B, h, L, M])``; weights sum to 1 over M (None
        with ``need_weights=False``).
    """

    def __init__(
        self,
        num_heads: int,
        qkv_bias: bool = True,
        attn_dropout: float = 0.0,
        proj_dropout: float = 0.0,
        seed: int | None = None,
        recompute_weights: bool | None = None,
        scale: bool = True,
        init: str = "vit",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.recompute_weights = recompute_weights
        self.scale = scale
        self.init = initializers.check(init, "MultiHeadAttention.init")
        self.num_heads = num_heads
        self.qkv_bias = qkv_bias
        self.attn_dropout = attn_dropout
        self.proj_dropout = proj_dropout
        self.seed = seed
        self.attn_drop = keras.layers.Dropout(attn_dropout, seed=seed, dtype=self.dtype_policy)
        self.proj_drop = keras.layers.Dropout(
            proj_dropout, seed=offset_seed(seed, 1), dtype=self.dtype_policy
        )

    def build(self, x_shape, context_shape=None):
        dim = x_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"width {dim} is not divisible by num_heads={self.num_heads}")
        context_dim = dim if context_shape is None else context_shape[-1]

        def dense(name, in_dim, bias):
            layer = initializers.dense(
                dim, in_dim, self.init, use_bias=bias, name=name, dtype=self.dtype_policy
            )
            layer.build((None, None, in_dim))
            return layer

        self.q_proj = dense("q", dim, self.qkv_bias)
        self.k_proj = dense("k", context_dim, self.qkv_bias)
        self.v_proj = dense("v", context_dim, self.qkv_bias)
        self.out_proj = dense("out", dim, True)

    def _split_heads(self, x):
        length = x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
        head_dim = x.shape[-1] // self.num_heads
        x = ops.reshape(x, (ops.shape(x)[0], length, self.num_heads, head_dim))
        return ops.transpose(x, (0, 2, 1, 3))  # [B, h, L, D/h]

    def call(self, x, context=None, training=False, need_weights=True):
        if context is None:
            context = x
        batch, dim, heads = ops.shape(x)[0], x.shape[-1], self.num_heads
        length = x.shape[1] if x.shape[1] is not None else ops.shape(x)[1]
        # Heads-major layout [B, h, L, D/h]: both products are plain batched matmuls,
        # and the scale goes on q (small) rather than on the logits [B, h, L, M].
        q = ops.cast(self._split_heads(self.q_proj(x)), "float32")
        if self.scale:
            q = q * (dim // heads) ** -0.5
        k = ops.cast(self._split_heads(self.k_proj(context)), "float32")
        v = self._split_heads(self.v_proj(context))
        if need_weights or (training and self.attn_dropout > 0):
            weights = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), axis=-1)
            dropped = self.attn_drop(weights, training=training)  # [B, h, L, M], float32
            out = ops.matmul(ops.cast(dropped, v.dtype), v)  # [B, h, L, D/h]
        elif not cpu_kernels.on_cpu():
            weights = None  # fused (XLA / cuDNN): [B, L, h, D/h] in and out
            out = keras.ops.dot_product_attention(
                *(ops.transpose(t, (0, 2, 1, 3)) for t in (q, k, ops.cast(v, "float32"))),
                scale=1.0,  # q is scaled above when self.scale
            )
            out = ops.transpose(ops.cast(out, v.dtype), (0, 2, 1, 3))  # [B, h, L, D/h]
        else:
            weights = None  # chunked, never materialised (osc_tf.layers.cpu_kernels)
            merge = lambda t: ops.reshape(t, (-1,) + tuple(ops.shape(t)[2:]))  # noqa: E731
            recompute = self._recompute(q.shape, k.shape, training)
            v32 = ops.cast(v, "float32")
            out = cpu_kernels.attention(merge(q), merge(k), merge(v32), recompute)
            out = ops.cast(ops.reshape(out, ops.shape(q)), v.dtype)  # [B, h, L, D/h]
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (batch, length, dim))  # [B, L, D]
        out = self.proj_drop(self.out_proj(out), training=training)
        return out, weights

    def _recompute(self, q_shape, k_shape, training: bool) -> bool:
        if not training:
            return True  # no backward pass: keep nothing
        if self.recompute_weights is not None:
            return self.recompute_weights
        batch, heads, length, context = q_shape[0], q_shape[1], q_shape[2], k_shape[2]
        if None in (batch, length, context):
            return False
        return batch * heads * length * context * 4 > KEEP_WEIGHTS_BYTES

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            qkv_bias=self.qkv_bias,
            attn_dropout=self.attn_dropout,
            proj_dropout=self.proj_dropout,
            seed=self.seed,
            recompute_weights=self.recompute_weights,
            scale=self.scale,
            init=self.init,
        )
        return config
