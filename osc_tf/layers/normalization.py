"""Layer normalisation with the CPU kernel's gradient and the original's epsilon."""

import keras
import tensorflow as tf

from osc_tf.layers.cpu_kernels import layer_norm

#: LayerNorm epsilon of every layer: PyTorch's nn.LayerNorm default, as in the
#: original study (Keras' default 1e-3 changes slot attention outputs by ~3e-3).
LAYER_NORM_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="osc_tf")
class LayerNorm(keras.layers.LayerNormalization):
    """``keras.layers.LayerNormalization`` over the last axis with ``layer_norm``'s gradient.

    Same weights, config and float32 computation under mixed precision as the
    Keras layer; other axes or ``rms_scaling`` fall back to the Keras computation.
    The default epsilon is ``LAYER_NORM_EPSILON`` (1e-5), not Keras' 1e-3.
    """

    def __init__(self, epsilon: float = LAYER_NORM_EPSILON, **kwargs):
        super().__init__(epsilon=epsilon, **kwargs)

    def call(self, inputs):
        axis = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        last = list(axis) in ([-1], [len(inputs.shape) - 1])
        if not (last and self.center and self.scale) or self.rms_scaling:
            return super().call(inputs)
        x = tf.cast(inputs, "float32")
        gamma = tf.cast(tf.convert_to_tensor(self.gamma), "float32")
        beta = tf.cast(tf.convert_to_tensor(self.beta), "float32")
        return tf.cast(layer_norm(x, gamma, beta, self.epsilon), self.compute_dtype)
