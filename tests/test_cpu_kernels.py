"""osc_tf.layers.cpu_kernels: hand-written gradients against autodiff of the plain formulas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from osc_tf.layers import cpu_kernels, normalization


def _value_and_grads(fn, args):
    """fn(*args), and the gradients of a generic scalar of it (not a plain sum)."""
    with tf.GradientTape() as tape:
        tape.watch(args)
        out = fn(*args)
        upstream = tf.reshape(tf.cos(tf.cast(tf.range(tf.size(out)), out.dtype)), tf.shape(out))
        scalar = tf.reduce_sum(out * upstream)
    return out, tape.gradient(scalar, args)


def _plain_attention(q, k, v):
    return tf.matmul(tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1), v)


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize(
    "groups,length,context,depth",
    [
        (3, 5, 7, 4),  # one chunk
        (70, 33, 1000, 8),  # chunk of 63 groups: two chunks, the last one partial
        (257, 64, 128, 16),  # chunk of 256 groups: a last chunk of one group
    ],
)
def test_attention_matches_autodiff(groups, length, context, depth, recompute, monkeypatch):
    # chunks of 2**21 logits (8 MiB) on any machine, for the partial chunks above
    monkeypatch.setattr(cpu_kernels, "_chunk_elements", lambda: 2**21)
    rng = np.random.default_rng(groups)
    q = tf.constant(rng.standard_normal((groups, length, depth)) * 2, tf.float32)
    k = tf.constant(rng.standard_normal((groups, context, depth)), tf.float32)
    v = tf.constant(rng.standard_normal((groups, context, depth)), tf.float32)
    want, want_grads = _value_and_grads(_plain_attention, [q, k, v])
    got, got_grads = _value_and_grads(lambda *a: cpu_kernels.attention(*a, recompute), [q, k, v])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def _cache_dir(root, caches):
    for i, (level, kind, size) in enumerate(caches):
        index = root / f"index{i}"
        index.mkdir(parents=True)
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (index / name).write_text(f"{value}\n")
    return str(root)


def test_chunk_size_follows_the_last_level_cache(tmp_path):
    epyc = [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "512K")]
    epyc.append((3, "Unified", "32768K"))
    assert cpu_kernels.cache_bytes(_cache_dir(tmp_path / "a", epyc)) == 32 << 20
    no_l3 = [(1, "Data", "48K"), (2, "Unified", "2048K"), (3, "Instruction", "64M")]
    assert cpu_kernels.cache_bytes(_cache_dir(tmp_path / "b", no_l3)) == 2 << 20
    assert cpu_kernels.cache_bytes(str(tmp_path / "missing")) is None
    assert cpu_kernels.cache_bytes(_cache_dir(tmp_path / "c", [(2, "Unified", "n/a")])) is None
    assert cpu_kernels.chunk_bytes(32 << 20) == 4 << 20  # an eighth
    assert cpu_kernels.chunk_bytes(512 << 10) == 256 << 10  # at least 256 KiB
    assert cpu_kernels.chunk_bytes(1 << 30) == 16 << 20  # at most 16 MiB
    assert cpu_kernels.chunk_bytes(None) == 4 << 20
    # this machine's chunk, as the kernel uses it
    assert cpu_kernels._chunk_elements() * 4 == cpu_kernels.chunk_bytes(cpu_kernels.cache_bytes())


def test_attention_in_tf_function_with_unknown_batch_and_xla():
    rng = np.random.default_rng(1)
    q, k, v = (tf.constant(rng.standard_normal((40, 16, 8)), tf.float32) for _ in range(3))
    want, want_grads = _value_and_grads(_plain_attention, [q, k, v])
    spec = tf.TensorSpec((None, 16, 8), tf.float32)
    for jit in (False, True):
        fn = tf.function(
            lambda q, k, v: _value_and_grads(cpu_kernels.attention, [q, k, v]),
            input_signature=[spec] * 3,
            jit_compile=jit,
        )
        got, got_grads = fn(q, k, v)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        for g, w in zip(got_grads, want_grads, strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def _plain_layer_norm(x, gamma, beta):
    mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
    return (x - mean) / tf.sqrt(variance + 1e-5) * gamma + beta


def test_layer_norm_matches_autodiff():
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((4, 9, 16)) * 3 + 1, tf.float32)
    gamma = tf.constant(rng.standard_normal(16), tf.float32)
    beta = tf.constant(rng.standard_normal(16), tf.float32)
    want, want_grads = _value_and_grads(_plain_layer_norm, [x, gamma, beta])
    got, got_grads = _value_and_grads(
        lambda x, g, b: cpu_kernels.layer_norm(x, g, b, 1e-5), [x, gamma, beta]
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_layer_norm_layer_equals_keras_layer_including_bfloat16():
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((2, 5, 8)), tf.float32)
    for dtype in ("float32", "mixed_bfloat16"):
        ours = normalization.LayerNorm(epsilon=1e-5, dtype=dtype)
        reference = keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype)
        for layer in (ours, reference):
            layer.build(x.shape)
        ours.set_weights([rng.standard_normal(8), rng.standard_normal(8)])
        reference.set_weights(ours.get_weights())
        got, want = ours(x), reference(x)
        assert got.dtype == want.dtype
        tol = 1e-5 if dtype == "float32" else 2e-2
        np.testing.assert_allclose(
            tf.cast(got, tf.float32), tf.cast(want, tf.float32), rtol=tol, atol=tol
        )


def test_gelu_matches_autodiff_of_exact_gelu():
    x = tf.constant(np.linspace(-8, 8, 1001), tf.float32)
    want, (want_grad,) = _value_and_grads(lambda x: tf.nn.gelu(x, approximate=False), [x])
    got, (got_grad,) = _value_and_grads(cpu_kernels.gelu, [x])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-5, atol=1e-5)


def test_attention_layer_keeps_weights_by_size_and_never_outside_training():
    from osc_tf.layers.attention import KEEP_WEIGHTS_BYTES, MultiHeadAttention

    auto, always = MultiHeadAttention(4), MultiHeadAttention(4, recompute_weights=True)
    small, big = (64 * 2, 4, 256, 16), (128 * 2, 4, 256, 16)  # [B, h, L, d]
    assert 128 * 2 * 4 * 256 * 256 * 4 > KEEP_WEIGHTS_BYTES >= 64 * 2 * 4 * 256 * 256 * 4
    assert auto._recompute(small, small, training=True) is False
    assert auto._recompute(big, big, training=True) is True
    assert auto._recompute((None, 4, 256, 16), small, training=True) is False
    assert auto._recompute(small, small, training=False) is True
    assert always._recompute(small, small, training=True) is True


def test_in_xla_context_tells_xla_functions_apart():
    # The one use of TensorFlow's private control_flow_util: fails here if TF changes it.
    assert cpu_kernels.in_xla_context() is False
    seen = []

    def probe(x):
        seen.append(cpu_kernels.in_xla_context())
        return x + 1

    for jit in (False, True):
        tf.function(probe, jit_compile=jit)(tf.constant(1.0))
    assert seen == [False, True]


def _graph_op_types(fn, *args):
    """Op types of the graph ``tf.function(fn)`` traces for ``args`` (nested bodies too)."""
    graph = tf.function(fn).get_concrete_function(*args).graph
    types = {op.type for op in graph.get_operations()}
    for function in graph.as_graph_def().library.function:
        types |= {node.op for node in function.node_def}
    return types


def test_on_cpu_follows_the_device_scope_and_xla():
    seen = {}

    def probe(name):
        def fn(x):
            seen[name] = cpu_kernels.on_cpu()
            return x + 1

        return fn

    x = tf.constant(1.0)
    seen["eager"] = cpu_kernels.on_cpu()  # no GPU on the test machine
    tf.function(probe("graph"))(x)
    tf.function(probe("xla"), jit_compile=True)(x)

    def in_scope(device, name):
        def fn(x):
            with tf.device(device):
                return probe(name)(x)

        return fn

    # Graph building records the scope's device; soft placement runs it on the CPU.
    tf.function(in_scope("/device:GPU:0", "gpu scope"))(x)
    tf.function(in_scope("/device:CPU:0", "cpu scope"))(x)
    assert seen == {
        "eager": True,
        "graph": True,
        "xla": False,
        "gpu scope": False,
        "cpu scope": True,
    }


def test_off_cpu_the_layers_take_the_fused_path_with_the_same_values():
    """Under a GPU device scope: no chunked loop, no custom gradients, same values."""
    from osc_tf.layers.attention import MultiHeadAttention
    from osc_tf.layers.feedforward import FeedForward

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((2, 16, 32)), tf.float32)
    attention, norm, mlp = MultiHeadAttention(4), normalization.LayerNorm(), FeedForward()

    def block(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out, _ = attention(norm(x), training=True, need_weights=False)
            out = mlp(out)
            scalar = tf.reduce_sum(out * tf.cos(out))
        return out, tape.gradient(scalar, x)

    def on(device):
        def fn(x):
            with tf.device(device):
                return block(x)

        return fn

    cpu_out, cpu_grad = tf.function(on("/device:CPU:0"))(x)
    gpu_out, gpu_grad = tf.function(on("/device:GPU:0"))(x)
    np.testing.assert_allclose(gpu_out, cpu_out, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gpu_grad, cpu_grad, rtol=1e-4, atol=1e-5)
    cpu_ops = _graph_op_types(on("/device:CPU:0"), x)
    gpu_ops = _graph_op_types(on("/device:GPU:0"), x)
    assert {"StatelessWhile", "IdentityN"} <= cpu_ops, cpu_ops  # chunked loop, custom gradients
    assert not {"While", "StatelessWhile", "IdentityN"} & gpu_ops, gpu_ops
