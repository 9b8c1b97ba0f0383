"""Slot attention (Locatello et al., 2020): slots compete for the input tokens."""

import keras
from keras import ops

from osc_tf.layers import initializers
from osc_tf.layers.feedforward import FeedForward
from osc_tf.layers.normalization import LayerNorm


@keras.saving.register_keras_serializable(package="osc_tf")
class SlotAttention(keras.layers.Layer):
    """Iterative slot attention, the Locatello et al. formulation.

    ::

        x = LN_in(tokens); k = x Wk; v = x Wv                  # no biases
        repeat num_iters:
            prev = slots
            q = LN_slots(slots) Wq / sqrt(D)
            a = softmax over slots of q kᵀ                     # [B, K, N]
            w = (a + eps) / sum over N of (a + eps)
            slots = GRUCell(inputs=w v, state=prev)            # Keras GRUCell, reset_after=True
            slots = slots + MLP_relu(LN_mlp(slots))            # hidden = hidden_mult·D
        attention = a of the last iteration

    Logits, softmax and the weighted mean run in float32. The slot width D is
    the width of the queries; tokens may have another width.

    Args:
        num_iters: number of iterations (weights shared across iterations).
        hidden_mult: hidden width of the residual MLP as a multiple of D.
        eps: added to the attention before the weighted mean.
        implicit_grad: differentiate only through the last iteration, from a
            stop-gradient fixed point (Chang et al., 2022). The forward value
            is unchanged; queries still get the last iteration's gradient
            (straight-through, as in BO-QSA).
        init: initialisation scheme (``osc_tf.layers.initializers``) of the q, k, v
            projections, the GRU (kernel, recurrent kernel and biases) and the MLP;
            ``"torch"``: PyTorch's defaults, U(±1/sqrt(D)), as the original.

    Call:
        queries: initial slots ``[B, K, D]``.
        tokens: ``[B, N, Dt]``.
        training: Python bool.
        all_steps: return every iteration's attention ``[B, T, K, N]`` instead of
            the last one's.

    Returns:
        ``(slots [B, K, D], attention [B, K, N])``; attention sums to 1 over K.
    """

    def __init__(
        self,
        num_iters: int = 3,
        hidden_mult: float = 2.0,
        eps: float = 1e-8,
        implicit_grad: bool = False,
        init: str = "torch",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if num_iters < 1:
            raise ValueError(f"SlotAttention.num_iters = {num_iters}: expected an integer >= 1")
        self.init = initializers.check(init, "SlotAttention.init")
        self.num_iters = num_iters
        self.hidden_mult = hidden_mult
        self.eps = eps
        self.implicit_grad = implicit_grad
        policy = self.dtype_policy

        def norm(name):
            return LayerNorm(name=name, dtype=policy)

        self.norm_inputs = norm("norm_inputs")
        self.norm_slots = norm("norm_slots")
        self.norm_mlp = norm("norm_mlp")
        self.mlp = FeedForward(hidden_mult, activation="relu", init=init, name="mlp", dtype=policy)

    def build(self, queries_shape, tokens_shape):
        dim = queries_shape[-1]
        policy = self.dtype_policy

        def dense(name, in_dim):
            layer = initializers.dense(dim, in_dim, self.init, False, name=name, dtype=policy)
            layer.build((None, in_dim))
            return layer

        self.k_proj = dense("k", tokens_shape[-1])
        self.v_proj = dense("v", tokens_shape[-1])
        self.q_proj = dense("q", dim)
        # PyTorch's GRUCell draws all four tensors from U(±1/sqrt(D)) (fan-in D for both).
        kernel, bias = initializers.kernel_and_bias(self.init, dim)
        recurrent, _ = initializers.kernel_and_bias(self.init, dim)  # its own draw
        self.gru = keras.layers.GRUCell(
            dim,
            reset_after=True,
            kernel_initializer=kernel,
            recurrent_initializer=recurrent,
            bias_initializer=bias,
            name="gru",
            dtype=policy,
        )
        self.gru.build((None, dim))
        self.norm_inputs.build(tokens_shape)
        for layer in (self.norm_slots, self.norm_mlp, self.mlp):
            layer.build(queries_shape)

    def _iteration(self, slots, k, v, training):
        """One update ``[B, K, D] -> ([B, K, D], attention [B, K, N])``."""
        dim = slots.shape[-1]
        q = self.q_proj(self.norm_slots(slots))  # [B, K, D]
        logits = ops.einsum("bkd,bnd->bkn", ops.cast(q, "float32"), k) * dim**-0.5
        attention = ops.softmax(logits, axis=1)  # [B, K, N], over slots
        weights = attention + self.eps
        weights = weights / ops.sum(weights, axis=2, keepdims=True)  # weighted mean over N
        updates = ops.einsum("bkn,bnd->bkd", weights, v)  # [B, K, D], float32
        batch, num_slots = ops.shape(slots)[0], ops.shape(slots)[1]
        flat_updates = ops.reshape(ops.cast(updates, slots.dtype), (-1, dim))  # [B·K, D]
        flat_prev = ops.reshape(slots, (-1, dim))  # [B·K, D]
        new, _ = self.gru(flat_updates, [flat_prev], training=training)
        slots = ops.reshape(new, (batch, num_slots, dim))  # [B, K, D]
        slots = slots + self.mlp(self.norm_mlp(slots), training=training)
        return slots, attention

    def iterate(self, queries, tokens, training=False):
        """Runs all iterations; returns ``(slots [B, K, D], attention [B, T, K, N])``.

        ``attention[:, t]`` is iteration t's softmax over slots (for
        visualisation); ``call`` returns only the last one.
        """
        x = self.norm_inputs(tokens)
        k = ops.cast(self.k_proj(x), "float32")  # [B, N, D]
        v = ops.cast(self.v_proj(x), "float32")  # [B, N, D]
        slots = queries
        attentions = []
        for i in range(self.num_iters):
            if self.implicit_grad and i == self.num_iters - 1 and i > 0:
                # Fixed point reached without gradient; queries keep a straight-through path.
                slots = ops.stop_gradient(slots) + queries - ops.stop_gradient(queries)
            slots, attention = self._iteration(slots, k, v, training)
            attentions.append(attention)
        return slots, ops.stack(attentions, axis=1)  # [B, T, K, N]

    def call(self, queries, tokens, training=False, all_steps=False):
        slots, attentions = self.iterate(queries, tokens, training=training)
        if all_steps:
            return slots, attentions  # [B, K, D], [B, T, K, N]
        return slots, attentions[:, -1]  # [B, K, D], [B, K, N]

    def get_config(self):
        config = super().get_config()
        config.update(
            num_iters=self.num_iters,
            hidden_mult=self.hidden_mult,
            eps=self.eps,
            implicit_grad=self.implicit_grad,
            init=self.init,
        )
        return config
