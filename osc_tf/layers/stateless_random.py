"""Seeded random draws that give the same numbers eagerly, in tf.function and under XLA.

``keras.random`` calls TensorFlow's stateless ops with the ``auto_select``
algorithm, which picks a different generator under XLA: the same seed gives
other numbers in a ``jit_compile=True`` function than eagerly (measured on TF
2.21 CPU). Queries sampled at inference must not depend on how the model is
compiled, so these draws fix the Philox algorithm.

A seed is an ``int`` or an int scalar tensor (a fixed, stateless draw) or a
``keras.random.SeedGenerator`` (a new draw per call, e.g. per training step).
"""

import keras
import tensorflow as tf

_ALG = "philox"


def _seed(seed):
    if isinstance(seed, keras.random.SeedGenerator):
        state = tf.convert_to_tensor(seed.next())
        return tf.cast(tf.math.floormod(state, 2**31 - 1), tf.int32)
    return tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])


def normal(shape, seed):
    """Standard normal float32 samples of ``shape``."""
    return tf.random.stateless_normal(shape, seed=_seed(seed), alg=_ALG)


def uniform(shape, seed, minval=0.0, maxval=1.0):
    """Uniform float32 samples in ``[minval, maxval)``."""
    return tf.random.stateless_uniform(shape, _seed(seed), minval, maxval, alg=_ALG)


def randint(shape, seed, maxval):
    """Uniform int32 samples in ``[0, maxval)``."""
    return tf.random.stateless_uniform(shape, _seed(seed), 0, maxval, tf.int32, alg=_ALG)


def offset_seed(seed: int | None, k: int) -> int | None:
    """The seed of a layer's k-th random part: ``seed + k``; None (unseeded) stays None."""
    return None if seed is None else seed + k
