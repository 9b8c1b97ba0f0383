"""What a training run prints: its plan, progress, validation lines, results and outputs."""

from __future__ import annotations

import json
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

    def plan(self, start: int, workdir: str, **facts) -> None:
        """Says what the run will do: ``facts`` are name -> text (data, model, batch, ...)."""
        what = f"resuming at step {start:,} of" if start else "training for"
        lines = [f"{what} {self.num_steps:,} steps into {workdir}"]
        lines += [f"  {name:8s} {text}" for name, text in facts.items()]
        print("\n".join(lines), file=self.stream, flush=True)

    def update(self, step: int, logs: dict | None) -> None:
        """Progress at ``step``; ``logs`` (None on steps whose outputs were not fetched)."""
        if self.bar is not None:
            shown = {
                k: v
                for k, v in (logs or {}).items()
                if k.startswith("loss") or k == "learning_rate"
            }
            self.bar.update(
                step, values=list(shown.items()) or None, finalize=step == self.num_steps
            )
        elif logs is not None and (step % self.log_interval == 0 or step == self.num_steps):
            self._line(step, "train", logs)

    def note(self, step: int, what: str, values: dict) -> None:
        if self.bar is None:
            self._line(step, what, values)

    def _line(self, step: int, what: str, values: dict) -> None:
        parts = " ".join(f"{k}={v:.4g}" for k, v in values.items())
        print(f"step {step}/{self.num_steps} {what}: {parts}", file=self.stream, flush=True)

    def done(self, workdir: str) -> None:
        """Says how the run did (the evaluation's headline numbers) and where its outputs are."""
        lines = [f"training finished: {workdir}", *_results(workdir)]
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


def _results(workdir: str) -> list[str]:
    """The evaluation's headline numbers beside the model at initialisation (metrics.json)."""
    path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        metrics = json.load(f)
    trained, init = metrics["trained"], metrics.get("init") or {}
    headline = metrics["protocol"].get("headline_ap")
    keys = [k for k in (headline, *HEADLINE_METRICS) if k in trained]
    protocol = metrics["protocol"]["name"]
    lines = [
        f"  {'evaluation':30s} {'trained':>8s} {'init':>8s}  ({metrics['split']} split, "
        f"{int(metrics['num_samples']):,} images, protocol {protocol})"
    ]
    for key in keys:
        before = f"{init[key]:8.4f}" if key in init else f"{'-':>8s}"
        note = "  (headline AP)" if key == headline else ""
        lines.append(f"  {key:30s} {trained[key]:8.4f} {before}{note}")
    return lines


#: Metrics shown at the end of training beside the headline AP, when the model has them.
HEADLINE_METRICS = tuple(
    f"{maps}/{name}"
    for maps in ("segmentation", "segmentation_decoder")
    for name in ("fg_ari", "mbo", "iou")
)
