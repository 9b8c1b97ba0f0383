"""What a training run prints: progress, validation lines and where its outputs are."""

from __future__ import annotations

import os
import sys

import keras


class Console:
    """A Keras progress bar on a terminal; one plain line per ``log_interval`` otherwise."""

    def __init__(self, num_steps: int, start: int, log_interval: int, stream=None):
        self.stream = stream or sys.stdout
        self.log_interval = max(log_interval, 1)
        self.num_steps = num_steps
        self.tty = self.stream.isatty()
        self.bar = keras.utils.Progbar(num_steps) if self.tty else None
        if self.bar is not None and start:
            self.bar.update(start)

    def update(self, step: int, logs: dict) -> None:
        shown = {k: v for k, v in logs.items() if k.startswith("loss") or k == "learning_rate"}
        if self.bar is not None:
            self.bar.update(step, values=list(shown.items()), finalize=step == self.num_steps)
        elif step % self.log_interval == 0 or step == self.num_steps:
            self._line(step, "train", logs)

    def note(self, step: int, what: str, values: dict) -> None:
        if self.bar is None:
            self._line(step, what, values)

    def _line(self, step: int, what: str, values: dict) -> None:
        parts = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        print(f"step {step}/{self.num_steps} {what}: {parts}", file=self.stream, flush=True)

    def done(self, workdir: str) -> None:
        """Says where the run's outputs are."""
        lines = [f"training finished: {workdir}"]
        places = (
            ("tensorboard", "TensorBoard", "tensorboard --logdir {}"),
            ("metrics.json", "metrics", "{}"),
            ("figures", "figures", "{}"),
            ("export", "SavedModel", "{}"),
            ("checkpoints", "checkpoints", "{}"),
        )
        for name, what, shown in places:
            path = os.path.join(workdir, name)
            if os.path.exists(path):
                lines.append(f"  {what:12s} {shown.format(path)}")
        print("\n".join(lines), file=self.stream, flush=True)
