"""Transformer decoders as object functions: cross-attention and co-attention.

Both have ``call(queries, tokens, training=False) -> (slots [B, K, D], attention [B, K, N])``
where ``attention`` is the last layer's queries→tokens attention averaged over
heads (each row sums to 1 over the N tokens); with ``all_steps=True`` every
layer's, ``[B, L, K, N]``.
"""

import keras
from keras import ops

from osc_tf.layers import initializers
from osc_tf.layers.attention import MultiHeadAttention
from osc_tf.layers.feedforward import FeedForward
from osc_tf.layers.normalization import LayerNorm
from osc_tf.layers.stateless_random import offset_seed


def _steps(steps: list, all_steps: bool):
    """Every layer's head-averaged attention [B, L, K, N], or the last one's [B, K, N]."""
    return ops.stack(steps, axis=1) if all_steps else steps[-1]


@keras.saving.register_keras_serializable(package="osc_tf")
class CrossAttentionBlock(keras.layers.Layer):
    """Pre-norm decoder block on a set of queries given a context set.

    ``x += SA(LN(x))`` (if ``self_attention``), ``x += CA(LN(x), LN_c(c))``
    (``LN_c`` only if ``norm_context``), ``x += MLP(LN(x))``; every residual
    branch goes through drop-path.

    Args:
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of D.
        self_attention: include self-attention among the queries.
        norm_context: layer-norm the context inside the block.
        qkv_bias: bias on q, k, v projections.
        dropout: dropout after attention projections and in the MLP.
        attn_dropout: dropout on attention weights.
        drop_path: stochastic-depth rate.
        seed: optional integer seed.
        scale_self_attention: divide the self-attention logits by sqrt(D / h)
            (the cross-attention logits always are); False as the original, whose
            decoder blocks reuse its unscaled self-attention.
        init: initialisation scheme of the attention and MLP layers.

    Call:
        x: ``[B, L, D]``; context: ``[B, M, Dc]``.

    Returns:
        ``(x [B, L, D], cross-attention weights [B, h, L, M])``.
    """

    def __init__(
        self,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        self_attention: bool = True,
        norm_context: bool = False,
        qkv_bias: bool = False,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        seed: int | None = None,
        scale_self_attention: bool = False,
        init: str = "vit",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.scale_self_attention = scale_self_attention
        self.init = initializers.check(init, "CrossAttentionBlock.init")
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.self_attention = self_attention
        self.norm_context = norm_context
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.attn_dropout = attn_dropout
        self.drop_path = drop_path
        self.seed = seed
        policy = self.dtype_policy

        def norm(name):
            return LayerNorm(name=name, dtype=policy)

        def attention(name, k, scale):
            seed_k = offset_seed(seed, k)
            return MultiHeadAttention(
                num_heads,
                qkv_bias,
                attn_dropout,
                dropout,
                seed_k,
                scale=scale,
                init=init,
                name=name,
                dtype=policy,
            )

        def path(k):
            return keras.layers.Dropout(
                drop_path, noise_shape=(None, 1, 1), seed=offset_seed(seed, k), dtype=policy
            )

        if self_attention:
            self.norm_self = norm("norm_self")
            self.self_attn = attention("self_attn", 0, scale_self_attention)
            self.path_self = path(10)
        self.norm_cross = norm("norm_cross")
        self.norm_ctx = norm("norm_context") if norm_context else None
        self.cross_attn = attention("cross_attn", 2, True)
        self.path_cross = path(11)
        self.norm_mlp = norm("norm_mlp")
        self.mlp = FeedForward(
            mlp_ratio, dropout=dropout, seed=offset_seed(seed, 4), init=init, dtype=policy
        )
        self.path_mlp = path(12)

    def build(self, x_shape, context_shape):
        if self.self_attention:
            self.norm_self.build(x_shape)
            self.self_attn.build(x_shape)
        if self.norm_ctx is not None:
            self.norm_ctx.build(context_shape)
        self.norm_cross.build(x_shape)
        self.cross_attn.build(x_shape, context_shape)
        self.norm_mlp.build(x_shape)
        self.mlp.build(x_shape)

    def call(self, x, context, training=False):
        if self.self_attention:
            attended, _ = self.self_attn(self.norm_self(x), training=training, need_weights=False)
            x = x + self.path_self(attended, training=training)
        if self.norm_ctx is not None:
            context = self.norm_ctx(context)
        attended, weights = self.cross_attn(self.norm_cross(x), context, training=training)
        x = x + self.path_cross(attended, training=training)
        x = x + self.path_mlp(self.mlp(self.norm_mlp(x), training=training), training=training)
        return x, weights

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            self_attention=self.self_attention,
            norm_context=self.norm_context,
            qkv_bias=self.qkv_bias,
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
            drop_path=self.drop_path,
            seed=self.seed,
            scale_self_attention=self.scale_self_attention,
            init=self.init,
        )
        return config


class _Decoder(keras.layers.Layer):
    """Constructor arguments, config and layer reuse shared by the two decoders."""

    def __init__(
        self,
        num_layers: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        reuse_layers: bool = False,
        qkv_bias: bool = False,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        seed: int | None = None,
        scale_self_attention: bool = False,
        init: str = "vit",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.scale_self_attention = scale_self_attention
        self.init = initializers.check(init, f"{type(self).__name__}.init")
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.reuse_layers = reuse_layers
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.attn_dropout = attn_dropout
        self.drop_path = drop_path
        self.seed = seed

    def _blocks(
        self, name: str, count: int, self_attention: bool, norm_context: bool, seed_offset: int
    ):
        count = min(count, 1) if self.reuse_layers else count
        return [
            CrossAttentionBlock(
                self.num_heads,
                self.mlp_ratio,
                self_attention=self_attention,
                norm_context=norm_context,
                qkv_bias=self.qkv_bias,
                dropout=self.dropout,
                attn_dropout=self.attn_dropout,
                drop_path=self.drop_path,
                seed=offset_seed(self.seed, seed_offset + 100 * i),
                scale_self_attention=self.scale_self_attention,
                init=self.init,
                name=f"{name}_{i}",
                dtype=self.dtype_policy,
            )
            for i in range(count)
        ]

    def _layer(self, blocks, i):
        return blocks[0 if self.reuse_layers else i]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            reuse_layers=self.reuse_layers,
            qkv_bias=self.qkv_bias,
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
            drop_path=self.drop_path,
            seed=self.seed,
            scale_self_attention=self.scale_self_attention,
            init=self.init,
        )
        return config


@keras.saving.register_keras_serializable(package="osc_tf")
class CrossAttentionDecoder(_Decoder):
    """Queries read the tokens through stacked pre-norm cross-attention blocks.

    Tokens are layer-normed once; each block is self-attention among the
    queries, cross-attention queries→tokens and an MLP, all pre-norm and
    residual. ``reuse_layers`` applies one shared block ``num_layers`` times.

    Args:
        num_layers: number of blocks applied.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of D.
        reuse_layers: share one block across all layers.
        qkv_bias, dropout, attn_dropout, drop_path, seed, scale_self_attention, init:
            as in ``CrossAttentionBlock``. The defaults are the original's: no q/k/v
            bias, unscaled self-attention, scaled cross-attention, timm's ViT init.

    Call:
        queries: ``[B, K, D]``; tokens: ``[B, N, Dt]``.

    Returns:
        ``(slots [B, K, D], attention [B, K, N])``; attention rows sum to 1 over N.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.norm_tokens = LayerNorm(name="norm_tokens", dtype=self.dtype_policy)
        self.blocks = self._blocks("block", self.num_layers, True, False, seed_offset=0)

    def build(self, queries_shape, tokens_shape):
        self.norm_tokens.build(tokens_shape)
        for block in self.blocks:
            block.build(queries_shape, tokens_shape)

    def call(self, queries, tokens, training=False, all_steps=False):
        tokens = self.norm_tokens(tokens)
        x, steps = queries, []
        for i in range(self.num_layers):
            x, weights = self._layer(self.blocks, i)(x, tokens, training=training)
            steps.append(ops.mean(weights, axis=1))  # [B, K, N]
        return x, _steps(steps, all_steps)  # [B, K, D], [B, K, N] or [B, L, K, N]


@keras.saving.register_keras_serializable(package="osc_tf")
class CoAttentionDecoder(_Decoder):
    """Queries and tokens update each other in every layer (both directions).

    Each layer, from the previous layer's values: the queries go through a
    cross-attention block (self-attention, queries→tokens, MLP) and the
    tokens through a block without self-attention (tokens→queries, MLP);
    contexts are layer-normed inside each block. The original study listed
    this decoder without implementing it.

    Args:
        as ``CrossAttentionDecoder``.

    Call:
        queries: ``[B, K, D]``; tokens: ``[B, N, Dt]``.

    Returns:
        ``(slots [B, K, D], attention [B, K, N])``: the last layer's
        queries→tokens attention averaged over heads, rows summing to 1 over N.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.query_blocks = self._blocks("query_block", self.num_layers, True, True, 0)
        # The last layer's token update would be discarded, so it is not created.
        self.token_blocks = self._blocks("token_block", self.num_layers - 1, False, True, 50)

    def build(self, queries_shape, tokens_shape):
        for block in self.query_blocks:
            block.build(queries_shape, tokens_shape)
        for block in self.token_blocks:
            block.build(tokens_shape, queries_shape)

    def call(self, queries, tokens, training=False, all_steps=False):
        x, t, steps = queries, tokens, []
        for i in range(self.num_layers):
            new_x, weights = self._layer(self.query_blocks, i)(x, t, training=training)
            steps.append(ops.mean(weights, axis=1))  # [B, K, N]
            if i < self.num_layers - 1:
                t, _ = self._layer(self.token_blocks, i)(t, x, training=training)
            x = new_x
        return x, _steps(steps, all_steps)  # [B, K, D], [B, K, N] or [B, L, K, N]
