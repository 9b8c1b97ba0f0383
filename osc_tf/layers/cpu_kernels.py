"""CPU training kernels with hand-written gradients: attention, LayerNorm, exact GELU.

TensorFlow runs a graph one op at a time, each op reading and writing whole
tensors in memory. In the default backbone (128 views of 16×16 tokens, 4 heads)
one attention map is ``[512, 256, 256]`` float32, 134 MB, so the autodiff
softmax-attention (logits, weights, their gradients, each stored and read again)
is bound by memory traffic, and keeps every layer's weights alive for the
backward pass. The functions here have hand-written gradients:

- ``attention(q, k, v)`` runs over chunks of the batch·heads axis in a
  ``tf.while_loop`` so that each chunk's logits, weights and their gradients
  stay in cache (a chunk's size follows the CPU's last-level cache, read at run
  time: ``chunk_bytes``); with ``recompute=True`` it keeps only the output for the
  backward pass and recomputes each chunk's weights there (as FlashAttention
  does on GPUs);
- ``layer_norm`` and ``gelu`` compute their gradients in a few passes instead
  of the autodiff graph of their forward formulas.

They are CPU kernels: where ops are placed on another device (a GPU, by a
``tf.device`` scope such as a replica's, or by default when a GPU is visible),
or built inside an XLA cluster, each function computes its plain formula and
leaves the fusion to XLA / cuDNN (``on_cpu`` decides; the attention layer then
calls ``keras.ops.dot_product_attention``).

``tests/test_cpu_kernels.py`` checks each value and gradient against the autodiff of
the plain formula, and the dispatch. Measured effect: docs/benchmarks.md ("Training step").
"""

import functools
import glob
import math
import os

import tensorflow as tf

_CACHE_DIR = "/sys/devices/system/cpu/cpu0/cache"  # Linux's description of CPU 0's caches
_FALLBACK_CHUNK_BYTES = 4 << 20  # where the cache size is unknown (not Linux)


def cache_bytes(cache_dir: str = _CACHE_DIR) -> int | None:
    """Size of the last-level data (or unified) cache that CPU 0 uses, from Linux's
    ``cache/index*/{level,type,size}`` files; None where they are missing or unreadable."""
    found = []
    for index in glob.glob(os.path.join(cache_dir, "index*")):
        try:
            fields = {}
            for name in ("level", "type", "size"):
                with open(os.path.join(index, name)) as f:
                    fields[name] = f.read().strip()
            if fields["type"] == "Instruction":
                continue
            size, unit = fields["size"], 1
            if size[-1:].upper() in ("K", "M", "G"):
                size, unit = size[:-1], 1024 ** (1 + "KMG".index(size[-1].upper()))
            found.append((int(fields["level"]), int(size) * unit))
        except (OSError, ValueError):
            return None
    return max(found)[1] if found else None


def chunk_bytes(cache: int | None) -> int:
    """Bytes of one chunk's float32 logits for a last-level cache of ``cache`` bytes.

    An eighth of the cache (a chunk's logits, weights and their gradient are live at
    once, and the cache is shared by the cores), between 256 KiB and 16 MiB; 4 MiB
    where the cache is unknown. On a 32 MiB L3 (the 2026-12-07 AMD EPYC machine)
    4 MiB chunks were the fastest of 0.5–64 MiB for the default backbone's attention
    (docs/benchmarks.md, "Training step").
    """
    if cache is None:
        return _FALLBACK_CHUNK_BYTES
    return min(max(cache // 8, 256 << 10), 16 << 20)


@functools.cache
def _chunk_elements() -> int:
    """Elements of one chunk's ``[c, L, M]`` logits on this machine (read once)."""
    return chunk_bytes(cache_bytes()) // 4


def _chunk_size(length, context) -> tf.Tensor:
    return tf.maximum(1, _chunk_elements() // (length * context))


def attention(q, k, v, recompute: bool = False):
    """``softmax(q kᵀ) v`` for ``q [G, L, d]``, ``k, v [G, M, d]`` (float32, q pre-scaled).

    Returns ``[G, L, d]``. The weights are computed chunk by chunk, never as one
    tensor. ``recompute``: keep no weights for the backward pass and recompute
    them there (less memory, about 7 % slower for the default model); otherwise
    the chunks' weights are kept. Inside an XLA cluster the plain formula is used
    instead: XLA fuses it by itself (and its CPU compiler crashed on the chunked
    loop when the batch size was unknown at tracing).
    """
    if not on_cpu():  # a GPU, or inside XLA
        return tf.matmul(tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1), v)
    return (_recomputing_attention if recompute else _storing_attention)(q, k, v)


def on_cpu() -> bool:
    """Whether ops built now run on a CPU device, outside an XLA cluster.

    The device is the innermost ``tf.device`` scope (a distribution strategy
    places each replica's ops with one); without a scope, TensorFlow's default
    placement: a GPU when one is visible.
    """
    if in_xla_context():
        return False
    device = tf.constant(0.0).device  # the device scope in a graph; the placement eagerly
    if device:
        return tf.DeviceSpec.from_string(device).device_type in (None, "CPU")
    return not tf.config.list_logical_devices("GPU")


def in_xla_context() -> bool:
    """Whether ops built now go into an XLA cluster (a ``jit_compile=True`` function).

    TensorFlow has no public test for this. This function is the one use of its
    private ``control_flow_util``; ``tests/test_cpu_kernels.py`` checks it eagerly,
    in a plain ``tf.function`` and in an XLA one, so it fails loudly if TensorFlow
    changes.
    """
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _chunked_attention(recompute: bool):
    """The custom-gradient chunked attention, keeping or recomputing the weights."""

    @tf.custom_gradient
    def chunked(q, k, v):
        groups, length, context = tf.shape(q)[0], tf.shape(q)[1], tf.shape(k)[1]
        chunk = _chunk_size(length, context)
        steps = (groups + chunk - 1) // chunk

        def new_array():
            return tf.TensorArray(q.dtype, size=steps, infer_shape=False)

        def forward(i, out, kept):
            part = slice(i * chunk, (i + 1) * chunk)
            weights = tf.nn.softmax(tf.matmul(q[part], k[part], transpose_b=True), axis=-1)
            kept = kept if recompute else kept.write(i, weights)
            return i + 1, out.write(i, tf.matmul(weights, v[part])), kept

        _, out, kept = tf.while_loop(
            lambda i, *_: i < steps,
            forward,
            (0, new_array(), new_array()),
            parallel_iterations=1,
        )
        out = tf.ensure_shape(out.concat(), q.shape[:-1] + v.shape[-1:])

        def grad(d_out):
            # d logits = w ⊙ (d_out vᵀ − rowsum(d_out ⊙ out)): rowsum(w ⊙ d_out vᵀ) = d_out·out.
            row_dot = tf.reduce_sum(d_out * out, axis=-1, keepdims=True)  # [G, L, 1]

            def backward(i, dq, dk, dv):
                part = slice(i * chunk, (i + 1) * chunk)
                qi, ki, vi, di = q[part], k[part], v[part], d_out[part]
                if recompute:
                    weights = tf.nn.softmax(tf.matmul(qi, ki, transpose_b=True), axis=-1)
                else:
                    weights = kept.read(i)
                d_logits = weights * (tf.matmul(di, vi, transpose_b=True) - row_dot[part])
                # dk and dv are computed transposed, [c, d, M]: oneDNN's batched matmul
                # is about twice as slow when the big operand (weights, d_logits) is
                # the transposed one; the small results are transposed after the loop.
                return (
                    i + 1,
                    dq.write(i, tf.matmul(d_logits, ki)),
                    dk.write(i, tf.matmul(qi, d_logits, transpose_a=True)),
                    dv.write(i, tf.matmul(di, weights, transpose_a=True)),
                )

            arrays = (new_array(), new_array(), new_array())
            _, dq, dk, dv = tf.while_loop(
                lambda i, *_: i < steps, backward, (0, *arrays), parallel_iterations=1
            )
            return (
                tf.ensure_shape(dq.concat(), q.shape),
                tf.ensure_shape(tf.transpose(dk.concat(), (0, 2, 1)), k.shape),
                tf.ensure_shape(tf.transpose(dv.concat(), (0, 2, 1)), v.shape),
            )

        return out, grad

    return chunked


_storing_attention = _chunked_attention(recompute=False)
_recomputing_attention = _chunked_attention(recompute=True)


def layer_norm(x, gamma, beta, epsilon: float):
    """LayerNorm over the last axis: ``(x − mean) / sqrt(var + epsilon) · gamma + beta``."""
    if not on_cpu():  # autodiff of the formula: XLA fuses it
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + epsilon) * gamma + beta

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        mean = tf.reduce_mean(x, axis=-1, keepdims=True)
        centred = x - mean
        variance = tf.reduce_mean(tf.square(centred), axis=-1, keepdims=True)
        inv_std = tf.math.rsqrt(variance + epsilon)
        normed = centred * inv_std

        def grad(dy):
            reduce_axes = list(range(len(dy.shape) - 1))
            d_normed = dy * gamma
            dx = inv_std * (
                d_normed
                - tf.reduce_mean(d_normed, axis=-1, keepdims=True)
                - normed * tf.reduce_mean(d_normed * normed, axis=-1, keepdims=True)
            )
            return dx, tf.reduce_sum(dy * normed, axis=reduce_axes), tf.reduce_sum(dy, reduce_axes)

        return normed * gamma + beta, grad

    return normalize(x, gamma, beta)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu(x):
    """Exact GELU ``x Φ(x)`` with ``Φ`` the standard normal CDF (via erf)."""
    return _gelu(x) if on_cpu() else tf.nn.gelu(x, approximate=False)


@tf.custom_gradient
def _gelu(x):
    cdf = 0.5 * (1.0 + tf.math.erf(x * _INV_SQRT2))

    def grad(dy):
        return dy * (cdf + x * (_INV_SQRT_2PI * tf.exp(-0.5 * tf.square(x))))

    return x * cdf, grad
