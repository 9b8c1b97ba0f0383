"""MaskDecoder: each slot paints the image and claims its pixels with an alpha mask.

The decoder makes the slots explain the scene (the reconstruction objective,
``osc_tf.losses.reconstruction_mse``) and gives masks at pixel resolution: the
alpha of a slot, normalised over slots, is its mask. A slot is decoded on a
``g×g`` grid of cells over the image; every cell emits a ``p×p`` block of
pixels (``R = g·p``), so the cost grows with the number of cells, not pixels::

    s = W_s LN(slot_k)                                  # [B, K, C]
    r = position of cell c (see ``positions``)          # [B, K, g², 2]
    h = act(s + W_r r)                                  # [B, K, g², C]
    h = act(W_1 h + b_1)
    rgb = W_rgb h + b_rgb; alpha = W_a h                # [B, K, g², 3·p²], [B, K, g², p²]
    masks = softmax over K of alpha                     # [B, K, R, R]
    reconstruction = Σ_k masks_k · RGB_k                # [B, R, R, 3]

Positions are in image coordinates ``[-1, 1]`` (cell and token centres). With
``positions="relative"`` a cell's position is taken from the slot's attention
centroid (the attention-weighted mean of the token centres), so a slot's
decoder describes its object around wherever the object is; the gradient of the
reconstruction reaches the attention through the centroid.
"""

import math

import keras
from keras import ops

from osc_tf.layers import initializers
from osc_tf.layers.cpu_kernels import gelu
from osc_tf.layers.normalization import LayerNorm

POSITIONS = ("relative", "relative_scaled", "absolute")


def grid_centres(side: int) -> "keras.KerasTensor":
    """Centres of a ``side×side`` grid in row-major order, ``(x, y)`` in [-1, 1]: ``[side², 2]``."""
    centre = (ops.arange(side, dtype="float32") + 0.5) / side * 2.0 - 1.0  # [side]
    ys, xs = ops.meshgrid(centre, centre, indexing="ij")  # [side, side] each
    return ops.reshape(ops.stack([xs, ys], axis=-1), [side * side, 2])


@keras.saving.register_keras_serializable(package="osc_tf")
class MaskDecoder(keras.layers.Layer):
    """Decodes every slot to RGB and an alpha logit per pixel; alphas softmaxed over slots.

    Args:
        resolution: side R of the decoded image and masks, a divisor of the input
            side (the target is then each block's mean); None: the input's side.
        grid: cells per side g; None: the side of the attention's token grid. R must
            be a multiple of g.
        hidden: width C of the decoder's hidden layers.
        positions: ``"relative"`` (cell centre minus the slot's attention centroid),
            ``"relative_scaled"`` (that, divided per axis by the slot's attention
            spread, its weighted standard deviation plus ``min_spread``) or
            ``"absolute"`` (cell centre; the slot must say where its object is).
        min_spread: added to the spread of ``"relative_scaled"``.
        activation: a Keras activation name; ``"gelu"`` is the exact (erf) GELU.
        init: initialisation scheme of the dense layers (``osc_tf.layers.initializers``).

    Call:
        slots: ``[B, K, D]``.
        attention: ``[B, K, N]`` slot attention over the ``h×h`` token grid (read
            for ``"relative*"`` positions and for the default ``grid``).
        images: ``[B, H, W, 3]`` the normalised input images (H = W; the target).
        training: Python bool.

    Returns:
        A dict of float32 tensors: ``masks [B, K, H, W]`` (sum to 1 over K; the
        decoder's masks resized to the input when R ≠ H), ``reconstruction
        [B, R, R, 3]`` and ``reconstruction_target [B, R, R, 3]`` (the images,
        or the means of their (H/R)² blocks when R ≠ H).
    """

    def __init__(
        self,
        resolution: int | None = None,
        grid: int | None = None,
        hidden: int = 64,
        positions: str = "relative",
        min_spread: float = 0.1,
        activation: str = "gelu",
        init: str = "torch",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if positions not in POSITIONS:
            raise ValueError(f"MaskDecoder.positions must be one of {POSITIONS}, got {positions!r}")
        for name, value in (("resolution", resolution), ("grid", grid), ("hidden", hidden)):
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                raise ValueError(f"MaskDecoder.{name} must be a positive integer, got {value!r}")
        self.init = initializers.check(init, "MaskDecoder.init")
        self.resolution = resolution
        self.grid = grid
        self.hidden = hidden
        self.positions = positions
        self.min_spread = min_spread
        self.activation = activation
        self._activation = gelu if activation == "gelu" else keras.activations.get(activation)

    def _sizes(self, attention_shape, images_shape) -> tuple[int, int, int]:
        """(R, g, p) for these inputs, checked."""
        side = images_shape[1]
        if side is None or images_shape[2] != side:
            raise ValueError(
                f"MaskDecoder needs square images of a known size, got {tuple(images_shape)}"
            )
        tokens = attention_shape[-1]
        token_side = math.isqrt(tokens) if tokens is not None else None
        if token_side is None or token_side * token_side != tokens:
            raise ValueError(f"MaskDecoder: N={tokens} tokens are not a square grid")
        resolution = self.resolution or side
        grid = self.grid or token_side
        if resolution % grid:
            raise ValueError(
                f"MaskDecoder.resolution = {resolution} is not a multiple of the grid {grid} "
                "(each cell decodes a square block of pixels)"
            )
        if side % resolution:
            raise ValueError(
                f"MaskDecoder.resolution = {resolution} does not divide the image side {side} "
                "(the target is the mean of each block of pixels)"
            )
        return resolution, grid, resolution // grid

    def build(self, slots_shape, attention_shape, images_shape):
        _, _, block = self._sizes(attention_shape, images_shape)
        dim, policy = slots_shape[-1], self.dtype_policy
        self.norm = LayerNorm(name="norm", dtype=policy)
        self.norm.build(slots_shape)
        layers = (
            ("slot_proj", self.hidden, dim, (*slots_shape[:-1], dim)),
            ("pos_proj", self.hidden, 2, (None, 2)),
            ("fc1", self.hidden, self.hidden, (None, self.hidden)),
            ("rgb", block * block * 3, self.hidden, (None, self.hidden)),
            ("alpha", block * block, self.hidden, (None, self.hidden)),
        )
        for name, units, fan_in, shape in layers:
            # A bias shared by every slot's alpha logit cancels in the softmax over slots.
            layer = initializers.dense(
                units, fan_in, self.init, use_bias=name != "alpha", name=name, dtype=policy
            )
            layer.build(shape)
            setattr(self, name, layer)

    def _position_features(self, attention, grid: int, dtype):
        """``W_r r + b_r`` per slot and cell: ``[B, K, g², C]`` (``[1, 1, g², C]`` if absolute).

        The projection is linear, so for ``"relative"`` it is the cells' projection
        minus the centroid's, ``(W_r cell + b_r) − W_r centroid_k``: no [B, K, g², 2]
        tensor and no matmul over B·K·g² rows of two inputs.
        """
        cells = grid_centres(grid)  # [g², 2]
        if self.positions == "absolute":
            return self.pos_proj(ops.cast(cells, dtype))[None, None]  # [1, 1, g², C]
        attention = ops.cast(attention, "float32")
        weights = attention / (ops.sum(attention, axis=-1, keepdims=True) + 1e-8)  # [B, K, N]
        tokens = grid_centres(math.isqrt(attention.shape[-1]))  # [N, 2]
        centroid = ops.einsum("bkn,nc->bkc", weights, tokens)  # [B, K, 2]
        if self.positions == "relative":
            projected = self.pos_proj(ops.cast(cells, dtype))[None, None]  # [1, 1, g², C]
            kernel = ops.cast(self.pos_proj.kernel, dtype)
            return projected - ops.expand_dims(ops.matmul(ops.cast(centroid, dtype), kernel), 2)
        relative = cells[None, None] - centroid[:, :, None]  # [B, K, g², 2]
        offsets = tokens[None, None] - centroid[:, :, None]  # [B, K, N, 2]
        variance = ops.einsum("bkn,bknc->bkc", weights, offsets * offsets)
        relative = relative / (ops.sqrt(variance + 1e-8) + self.min_spread)[:, :, None]
        return self.pos_proj(ops.cast(relative, dtype))

    def call(self, slots, attention, images, training=False):
        resolution, grid, block = self._sizes(attention.shape, images.shape)
        batch, num_slots = ops.shape(slots)[0], ops.shape(slots)[1]
        features = self.slot_proj(self.norm(slots))  # [B, K, C]
        positions = self._position_features(attention, grid, features.dtype)
        # expand_dims, not x[:, :, None]: TF slices for a new axis and its gradient is a
        # StridedSliceGrad copy of the broadcast operand (2.3 ms of a discovery step)
        h = self._activation(ops.expand_dims(features, 2) + positions)  # [B, K, g², C]
        h = self._activation(self.fc1(h))
        # Everything stays in the cells' layout [B, K, g², p², ...] (the reductions over K
        # need no transpose); only the outputs are rearranged to images.
        cells = [batch, num_slots, grid * grid, block * block]
        # rgb units are channel-major (3, p²): the product with the alphas broadcasts
        # over a middle axis, 3× faster forward and backward than over a trailing axis of 3
        rgb = ops.reshape(ops.cast(self.rgb(h), "float32"), [*cells[:3], 3, block * block])
        logits = ops.reshape(ops.cast(self.alpha(h), "float32"), cells)  # [B, K, g², p²]
        weights = ops.exp(logits - ops.max(logits, axis=1, keepdims=True))
        weights = weights / ops.sum(weights, axis=1, keepdims=True)  # softmax over K
        reconstruction = ops.sum(ops.expand_dims(weights, 3) * rgb, axis=1)  # [B, g², 3, p²]
        target = ops.cast(images, "float32")
        masks = _masks_from_cells(weights, grid, block)  # [B, K, R, R]
        side = images.shape[1]
        if resolution != side:
            # the target: the mean of each (side/R)² block (area resampling, XLA-ready)
            shrink = side // resolution
            target = ops.average_pool(target, shrink, strides=shrink, padding="valid")
            masks = ops.image.resize(
                ops.transpose(masks, [0, 2, 3, 1]), (side, side), interpolation="bilinear"
            )  # [B, H, W, K]: bilinear weights keep the sum over slots at 1
            masks = ops.transpose(masks, [0, 3, 1, 2])
        return {
            "masks": masks,
            "reconstruction": _image_from_cells(reconstruction, grid, block),  # [B, R, R, 3]
            "reconstruction_target": ops.stop_gradient(target),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            resolution=self.resolution,
            grid=self.grid,
            hidden=self.hidden,
            positions=self.positions,
            min_spread=self.min_spread,
            activation=self.activation,
            init=self.init,
        )
        return config


def _masks_from_cells(x, grid: int, block: int):
    """Per-slot cells ``[B, K, g², p²]`` to maps ``[B, K, R, R]`` (R = g·p)."""
    batch, slots = ops.shape(x)[0], ops.shape(x)[1]
    x = ops.reshape(x, [batch, slots, grid, grid, block, block])
    x = ops.transpose(x, [0, 1, 2, 4, 3, 5])  # [B, K, g, p, g, p]
    return ops.reshape(x, [batch, slots, grid * block, grid * block])


def _image_from_cells(x, grid: int, block: int):
    """Channel-major cells ``[B, g², C, p²]`` to images ``[B, R, R, C]`` (R = g·p)."""
    batch, channels = ops.shape(x)[0], x.shape[2]
    x = ops.reshape(x, [batch, grid, grid, channels, block, block])
    x = ops.transpose(x, [0, 1, 4, 2, 5, 3])  # [B, g, p, g, p, C]
    return ops.reshape(x, [batch, grid * block, grid * block, channels])
