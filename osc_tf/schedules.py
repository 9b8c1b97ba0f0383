"""Learning-rate schedules: linear warm-up, then cosine or exponential decay, then constant.

The schedule is defined over the whole step budget ``total_steps`` (``train``
fills it in from ``train.num_steps``), with the phases given as fractions of it
so that one gin preset works for any budget::

    lr
    peak ┤    ╭──╮
         │   ╱    ╲__            warm-up: start_factor·peak → peak (linear)
     end ┤  ╱        ╲______     decay:   peak → end_lr (cosine | exponential)
         │ ╱                     constant: end_lr for the remaining steps
         └┴──┴─────────┴─────→ step
          0  warm-up   decay end   total_steps

In gin: ``train.lr_schedule = @WarmupDecay`` (the class, not an instance) and
``WarmupDecay.peak_lr = 7e-4`` etc.; ``train`` calls it with ``total_steps``.

Warm-up and cosine decay are Keras' ``CosineDecay`` (``warmup_target``,
``warmup_steps``, ``alpha = end_lr / peak_lr``), which holds ``end_lr`` after its
decay steps as this schedule does; Keras has no warm-up before an exponential
(geometric) decay, so that one is written here.
"""

from __future__ import annotations

import keras
from keras import ops

DECAYS = ("cosine", "exponential")


class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, cosine or exponential decay to ``end_lr``, then constant.

    Args:
        total_steps: the training budget in optimizer steps.
        peak_lr: learning rate reached at the end of the warm-up.
        end_lr: learning rate at the end of the decay and during the constant phase.
        warmup_fraction: fraction of ``total_steps`` spent warming up (0 disables).
        decay_fraction: fraction of ``total_steps`` spent decaying after the warm-up;
            ``None`` decays until the last step (no constant phase).
        start_factor: warm-up starts at ``start_factor * peak_lr``.
        decay: ``"cosine"`` or ``"exponential"`` (geometric interpolation from
            ``peak_lr`` to ``end_lr``).
    """

    def __init__(
        self,
        total_steps: int,
        peak_lr: float = 7e-4,
        end_lr: float = 3e-4,
        warmup_fraction: float = 0.2,
        decay_fraction: float | None = None,
        start_factor: float = 0.0,
        decay: str = "cosine",
    ):
        if decay not in DECAYS:
            raise ValueError(f"WarmupDecay.decay must be one of {DECAYS}, got {decay!r}")
        if int(total_steps) < 1:
            raise ValueError(f"WarmupDecay.total_steps must be >= 1, got {total_steps}")
        if not 0.0 <= warmup_fraction <= 1.0:
            raise ValueError(
                f"WarmupDecay.warmup_fraction must be in [0, 1], got {warmup_fraction}"
            )
        if decay_fraction is not None and not 0.0 <= warmup_fraction + decay_fraction <= 1.0:
            raise ValueError(
                "WarmupDecay.warmup_fraction + decay_fraction must be in [0, 1], got "
                f"{warmup_fraction} + {decay_fraction}"
            )
        if decay == "exponential" and (peak_lr <= 0 or end_lr <= 0):
            raise ValueError("exponential decay needs peak_lr > 0 and end_lr > 0")
        self.total_steps = int(total_steps)
        self.peak_lr = float(peak_lr)
        self.end_lr = float(end_lr)
        self.warmup_fraction = float(warmup_fraction)
        self.decay_fraction = None if decay_fraction is None else float(decay_fraction)
        self.start_factor = float(start_factor)
        self.decay = decay
        self._cosine = None
        if decay == "cosine":
            self._cosine = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=self.start_factor * self.peak_lr,
                decay_steps=max(self.decay_steps, 1),
                alpha=self.end_lr / self.peak_lr if self.peak_lr else 0.0,
                warmup_target=self.peak_lr,
                warmup_steps=self.warmup_steps,
            )

    @property
    def warmup_steps(self) -> int:
        return int(round(self.warmup_fraction * self.total_steps))

    @property
    def decay_steps(self) -> int:
        if self.decay_fraction is None:
            return self.total_steps - self.warmup_steps
        return int(round(self.decay_fraction * self.total_steps))

    def __call__(self, step):
        if self._cosine is not None:
            return self._cosine(step)
        step = ops.cast(step, "float32")
        warmup = float(self.warmup_steps)
        # Warm-up: linear from start_factor·peak at step 0 to peak at step `warmup`.
        warm_progress = ops.clip(step / max(warmup, 1.0), 0.0, 1.0)
        warm_lr = self.peak_lr * (self.start_factor + (1.0 - self.start_factor) * warm_progress)
        # Decay: progress 0 → 1 over decay_steps, then held at 1 (constant end_lr).
        progress = ops.clip((step - warmup) / float(max(self.decay_steps, 1)), 0.0, 1.0)
        decay_lr = self.peak_lr * ops.power(self.end_lr / self.peak_lr, progress)
        return ops.where(step < warmup, warm_lr, decay_lr)

    def get_config(self) -> dict:
        return {
            "total_steps": self.total_steps,
            "peak_lr": self.peak_lr,
            "end_lr": self.end_lr,
            "warmup_fraction": self.warmup_fraction,
            "decay_fraction": self.decay_fraction,
            "start_factor": self.start_factor,
            "decay": self.decay,
        }
