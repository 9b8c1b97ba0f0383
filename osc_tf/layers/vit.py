"""Patch Vision Transformer backbone: patch embedding, positional embedding, pre-norm blocks."""

import keras
from keras import ops

from osc_tf.layers import initializers
from osc_tf.layers.attention import MultiHeadAttention
from osc_tf.layers.feedforward import FeedForward
from osc_tf.layers.normalization import LayerNorm
from osc_tf.layers.stateless_random import offset_seed


@keras.saving.register_keras_serializable(package="osc_tf")
class TransformerBlock(keras.layers.Layer):
    """Pre-norm block ``x += DropPath(MHSA(LN(x))); x += DropPath(MLP(LN(x)))``.

    Args:
        num_heads: attention heads.
        mlp_ratio: MLP hidden width as a multiple of D.
        qkv_bias: bias on the q, k, v projections.
        dropout: dropout after the attention projection and in the MLP.
        attn_dropout: dropout on the attention weights.
        drop_path: stochastic-depth rate (a whole residual branch dropped per sample).
        seed: optional integer seed for all random ops of the block.
        recompute_attention: recompute the attention weights in the backward pass
            instead of keeping them; None: by size (``MultiHeadAttention.recompute_weights``).
        scale_attention: divide the attention logits by sqrt(D / h).
        init: initialisation scheme of the attention and MLP layers.

    Call:
        x: ``[B, N, D]``.

    Returns:
        ``[B, N, D]``.
    """

    def __init__(
        self,
        num_heads: int,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = False,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        seed: int | None = None,
        recompute_attention: bool | None = None,
        scale_attention: bool = False,
        init: str = "vit",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.recompute_attention = recompute_attention
        self.scale_attention = scale_attention
        self.init = init
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.attn_dropout = attn_dropout
        self.drop_path = drop_path
        self.seed = seed
        policy = self.dtype_policy
        self.norm1 = LayerNorm(dtype=policy)
        self.attn = MultiHeadAttention(
            num_heads,
            qkv_bias,
            attn_dropout,
            dropout,
            seed=offset_seed(seed, 0),
            recompute_weights=recompute_attention,
            scale=scale_attention,
            init=init,
            dtype=policy,
        )
        self.norm2 = LayerNorm(dtype=policy)
        self.mlp = FeedForward(
            mlp_ratio, dropout=dropout, seed=offset_seed(seed, 2), init=init, dtype=policy
        )
        # Stochastic depth: one Bernoulli draw per sample, broadcast over tokens and channels.
        self.drop_path1 = keras.layers.Dropout(
            drop_path, noise_shape=(None, 1, 1), seed=offset_seed(seed, 4), dtype=policy
        )
        self.drop_path2 = keras.layers.Dropout(
            drop_path, noise_shape=(None, 1, 1), seed=offset_seed(seed, 5), dtype=policy
        )

    def build(self, x_shape):
        for layer in (self.norm1, self.norm2, self.mlp):
            layer.build(x_shape)
        self.attn.build(x_shape)

    def call(self, x, training=False):
        attended, _ = self.attn(self.norm1(x), training=training, need_weights=False)
        x = x + self.drop_path1(attended, training=training)
        return x + self.drop_path2(self.mlp(self.norm2(x), training=training), training=training)

    def compute_output_shape(self, x_shape):
        return x_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
            drop_path=self.drop_path,
            seed=self.seed,
            recompute_attention=self.recompute_attention,
            scale_attention=self.scale_attention,
            init=self.init,
        )
        return config


@keras.saving.register_keras_serializable(package="osc_tf")
class ViT(keras.layers.Layer):
    """Patch Vision Transformer returning patch tokens and a pooled vector.

    Images are cut into non-overlapping P×P patches (a strided convolution),
    a learned positional embedding is added to the patch tokens before the
    first block or before every block, and pre-norm transformer blocks follow
    (dot-product attention, exact GELU, LayerNorm epsilon 1e-5).
    Defaults are the original study's: P=8, D=64, 4 layers, 4 heads, MLP
    ratio 2, positional embedding before every block, no q/k/v bias, attention
    logits NOT divided by sqrt(D/h) (the original computes the scale but never
    applies it), timm's ViT initialisation for the blocks' linear layers and
    PyTorch's default for the patch convolution.

    Args:
        patch_size: P; image height and width must be multiples of P.
        embed_dim: D.
        num_layers: number of blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width as a multiple of D.
        qkv_bias: bias on the q, k, v projections.
        dropout: dropout after attention projections and in MLPs.
        attn_dropout: dropout on attention weights.
        drop_path: stochastic-depth rate of every block.
        pos_embed_every_layer: add the positional embedding before every block
            (True) or only before the first (False).
        pooling: ``"avg"`` (mean of patch tokens) or ``"cls"`` (an extra
            learned token, never given a positional embedding).
        output_norm: apply a final LayerNorm to all tokens.
        seed: optional integer seed for all random ops.
        recompute_attention: recompute each block's attention weights in the
            backward pass instead of keeping them (True: about 0.5 GB less memory
            for the default model at batch 64, a step about 7 % slower;
            docs/benchmarks.md). None (default): keep them when one block's
            weights take at most 128 MiB (the default model up to batch 64 per
            replica), recompute otherwise (bigger batches, patch 4).
        scale_attention: divide the attention logits by sqrt(D / h) (the usual
            transformer; gin/model/backbone/scaled_attention.gin). False: the
            original study's unscaled logits.
        init: initialisation scheme of the blocks' linear layers
            (``osc_tf.layers.initializers``; ``"vit"``: N(0, 0.02²), zero biases).
        patch_init: initialisation scheme of the patch convolution (``"torch"``:
            U(±1/sqrt(3·P·P)) for kernel and bias, as the original).

    Call:
        images: ``[B, H, W, C]`` normalised float images; H, W static.

    Returns:
        ``{"tokens": [B, N, D], "pooled": [B, D]}`` with ``N = H/P · W/P``.
    """

    POOLINGS = ("avg", "cls")

    def __init__(
        self,
        patch_size: int = 8,
        embed_dim: int = 64,
        num_layers: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = False,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        drop_path: float = 0.0,
        pos_embed_every_layer: bool = True,
        pooling: str = "avg",
        output_norm: bool = False,
        seed: int | None = None,
        recompute_attention: bool | None = None,
        scale_attention: bool = False,
        init: str = "vit",
        patch_init: str = "torch",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in self.POOLINGS:
            raise ValueError(f"ViT.pooling = {pooling!r}: expected one of {self.POOLINGS}")
        for name, value in (("patch_size", patch_size), ("num_layers", num_layers)):
            if value < 1:
                raise ValueError(f"ViT.{name} = {value}: expected an integer >= 1")
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(
                f"ViT.embed_dim = {embed_dim}, ViT.num_heads = {num_heads}: expected "
                "embed_dim to be a multiple of num_heads"
            )
        rates = (("dropout", dropout), ("attn_dropout", attn_dropout), ("drop_path", drop_path))
        for name, value in rates:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"ViT.{name} = {value}: expected a rate in [0, 1)")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.dropout = dropout
        self.attn_dropout = attn_dropout
        self.drop_path = drop_path
        self.pos_embed_every_layer = pos_embed_every_layer
        self.pooling = pooling
        self.output_norm = output_norm
        self.seed = seed
        self.recompute_attention = recompute_attention
        self.scale_attention = scale_attention
        self.init = initializers.check(init, "ViT.init")
        self.patch_init = initializers.check(patch_init, "ViT.patch_init")
        policy = self.dtype_policy
        self.patch_embed = None  # built in build(): its init needs the number of channels
        self.blocks = [
            TransformerBlock(
                num_heads,
                mlp_ratio,
                qkv_bias,
                dropout,
                attn_dropout,
                drop_path,
                seed=offset_seed(seed, 10 * i),
                recompute_attention=recompute_attention,
                scale_attention=scale_attention,
                init=init,
                name=f"block_{i}",
                dtype=policy,
            )
            for i in range(num_layers)
        ]
        self.norm = LayerNorm(dtype=policy) if output_norm else None

    def build(self, images_shape):
        height, width = images_shape[1], images_shape[2]
        if height is None or width is None or height % self.patch_size or width % self.patch_size:
            raise ValueError(
                f"image size {height}x{width} must be static and divisible by P={self.patch_size}"
            )
        grid = (height // self.patch_size, width // self.patch_size)
        kernel, bias = initializers.kernel_and_bias(
            self.patch_init, self.patch_size**2 * images_shape[-1]
        )
        self.patch_embed = keras.layers.Conv2D(
            self.embed_dim,
            self.patch_size,
            strides=self.patch_size,
            kernel_initializer=kernel,
            bias_initializer=bias,
            name="patch_embed",
            dtype=self.dtype_policy,
        )
        self.patch_embed.build(images_shape)
        self.grid_size = grid
        self.pos_embed = self.add_weight(
            shape=(1, *grid, self.embed_dim),
            initializer=initializers.token_table(),
            name="pos_embed",
        )
        if self.pooling == "cls":
            self.cls_token = self.add_weight(
                shape=(1, 1, self.embed_dim),
                initializer=initializers.token_table(),
                name="cls_token",
            )
        num_tokens = grid[0] * grid[1] + (self.pooling == "cls")
        for block in self.blocks:
            block.build((None, num_tokens, self.embed_dim))
        if self.norm is not None:
            self.norm.build((None, num_tokens, self.embed_dim))

    def positional_embedding(self, height: int, width: int):
        """The positional embedding ``[1, N, D]`` for images of ``height × width`` pixels.

        The learned table has the grid of the images seen at build time; for
        another grid it is resized by bilinear interpolation.
        """
        grid = (height // self.patch_size, width // self.patch_size)
        table = ops.cast(self.pos_embed, self.compute_dtype)  # [1, H/P, W/P, D]
        if grid != self.grid_size:
            table = ops.image.resize(table, grid, interpolation="bilinear")
        return ops.reshape(table, (1, grid[0] * grid[1], self.embed_dim))  # [1, N, D]

    def call(self, images, training=False):
        x = self.patch_embed(images)  # [B, H/P, W/P, D]
        batch = ops.shape(x)[0]
        x = ops.reshape(x, (batch, -1, self.embed_dim))  # [B, N, D]
        pos = self.positional_embedding(images.shape[1], images.shape[2])  # [1, N, D]
        num_cls = 0
        if self.pooling == "cls":
            num_cls = 1
            cls = ops.broadcast_to(ops.cast(self.cls_token, x.dtype), (batch, 1, self.embed_dim))
            x = ops.concatenate([cls, x], axis=1)  # [B, 1+N, D]
            pos = ops.pad(pos, ((0, 0), (1, 0), (0, 0)))  # CLS gets no positional embedding
        for i, block in enumerate(self.blocks):
            if i == 0 or self.pos_embed_every_layer:
                x = x + pos
            x = block(x, training=training)
        if self.norm is not None:
            x = self.norm(x)
        tokens = x[:, num_cls:]  # [B, N, D]
        pooled = x[:, 0] if self.pooling == "cls" else ops.mean(tokens, axis=1)  # [B, D]
        return {"tokens": tokens, "pooled": pooled}

    def get_config(self):
        config = super().get_config()
        config.update(
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            qkv_bias=self.qkv_bias,
            dropout=self.dropout,
            attn_dropout=self.attn_dropout,
            drop_path=self.drop_path,
            pos_embed_every_layer=self.pos_embed_every_layer,
            pooling=self.pooling,
            output_norm=self.output_norm,
            seed=self.seed,
            recompute_attention=self.recompute_attention,
            scale_attention=self.scale_attention,
            init=self.init,
            patch_init=self.patch_init,
        )
        return config
