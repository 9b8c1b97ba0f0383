"""``TorchAdamW``: PyTorch's AdamW update rule as a Keras optimizer (the original's optimizer).

``keras.optimizers.AdamW`` and ``torch.optim.AdamW`` are both AdamW with decoupled
weight decay, but they round differently enough to tell apart over the first
hundred steps (measured side by side from the same weights and batches: losses
up to 1.5e-5 apart with Keras' rule, 1.9e-6 — float32 rounding — with this one):

- epsilon: torch adds it to the bias-corrected ``sqrt(v / (1 - beta_2^t))``; Keras
  to the uncorrected ``sqrt(v)`` and rescales, so its effective epsilon is
  ``epsilon / sqrt(1 - beta_2^t)`` (3.2e-7 at step 1, 1e-7 at step 10 for 1e-8);
- bias corrections: torch computes ``1 - beta^t`` in float64 from the Python
  betas; Keras from the betas cast to float32 (0.999 becomes 0.99900001), which
  makes early updates about 6.5e-6 smaller;
- weight decay: torch multiplies by ``1 - lr·wd`` (rounded to float32); Keras
  subtracts ``w·wd·lr``.

The moment updates are torch's too (``m += (1 - beta_1)(g - m)``,
``v = beta_2·v + (1 - beta_2)·g²``). Everything else (variables, schedules,
serialization, loss scaling, distribution) is Keras' AdamW, which this subclasses.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def _float64(value):
    """A Python float as a float64 tensor (``ops.cast`` of a float goes through float32)."""
    return ops.convert_to_tensor(np.float64(value), dtype="float64")


@keras.saving.register_keras_serializable(package="osc_tf")
class TorchAdamW(keras.optimizers.AdamW):
    """AdamW with ``torch.optim.AdamW``'s update (see the module docstring).

    Same arguments as ``keras.optimizers.AdamW``; ``amsgrad`` is not supported.
    """

    def __init__(self, *args, amsgrad: bool = False, **kwargs):
        if amsgrad:
            raise ValueError("TorchAdamW does not implement amsgrad")
        super().__init__(*args, amsgrad=False, **kwargs)

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None:
            return
        lr = ops.cast(self.learning_rate, "float64")
        factor = 1.0 - lr * _float64(self.weight_decay)  # torch: p *= 1 - lr·wd
        for variable in variables:
            if self._use_weight_decay(variable):
                variable.assign(variable * ops.cast(factor, variable.dtype))

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, "float64")
        # 1 - beta^t in float64 from the exact Python betas, as torch does.
        correction_1 = 1.0 - ops.power(_float64(self.beta_1), step)
        correction_2 = 1.0 - ops.power(_float64(self.beta_2), step)
        step_size = ops.cast(ops.cast(learning_rate, "float64") / correction_1, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1.0 - self.beta_1))
        self.assign(
            v, ops.add(ops.multiply(v, self.beta_2), ops.square(gradient) * (1.0 - self.beta_2))
        )
        denominator = ops.add(
            ops.divide(ops.sqrt(v), ops.cast(ops.sqrt(correction_2), dtype)), self.epsilon
        )
        self.assign_sub(variable, ops.multiply(ops.divide(m, denominator), step_size))
