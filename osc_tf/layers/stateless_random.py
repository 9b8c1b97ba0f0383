"""Seeded random draws that give the same numbers eagerly, in tf.function and under XLA.

``keras.random`` calls TensorFlow's stateless ops with the ``auto_select``
algorithm, which picks a different generator under XLA: the same seed gives
other numbers in a ``jit_compile=True`` function than eagerly (measured on TF
2.21 CPU). Queries sampled at inference must not depend on how the model is
compiled, so these draws fix the Philox algorithm.

A seed is an ``int`` or an int scalar tensor (a fixed, stateless draw) or a
``keras.random.SeedGenerator`` (a new draw per call, e.g. per training step).
A generator's draws also depend on the replica: under a distribution strategy
every replica holds the same generator state (a mirrored variable), so the
replica's id in the sync group is folded into the seed, and replicas sample
independently (e.g. the query noise of images at the same position of two
replicas' shards). Fixed seeds give the same numbers on every replica.
"""

import keras
import tensorflow as tf

_ALG = "philox"


def _seed(seed):
    if isinstance(seed, keras.random.SeedGenerator):
        state = tf.cast(tf.convert_to_tensor(seed.next()), tf.int64)
        state += tf.stack([tf.constant(0, tf.int64), tf.cast(replica_id(), tf.int64)])
        return tf.cast(tf.math.floormod(state, 2**31 - 1), tf.int32)
    return tf.stack([tf.cast(seed, tf.int32), tf.constant(0, tf.int32)])


def replica_id():
    """This replica's id in its sync group (0 outside a strategy or in cross-replica code)."""
    context = tf.distribute.get_replica_context()
    return 0 if context is None else context.replica_id_in_sync_group


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
