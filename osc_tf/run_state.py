"""State of a training run in its workdir: checkpoints, run info, console, signals.

Checkpoints live in ``workdir/checkpoints`` (``tf.train.CheckpointManager``):
TensorFlow writes a checkpoint's files first and only then atomically updates
the ``checkpoint`` index file, so a save interrupted half-way never replaces
the last good checkpoint; restoring always reads the index.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import keras
import tensorflow as tf

log = logging.getLogger("osc_tf")

CHECKPOINT_DIR = "checkpoints"


def model_trackables(model) -> dict:
    """What a checkpoint holds of a model: the model and, by position, every weight.

    ``tf.train.Checkpoint(model=model)`` alone misses the weights of sublayers that
    a layer keeps in a Python list (Keras 3.15 hides its tracked lists from
    TensorFlow checkpoints: 26 of the 56 weights of the tiny model, all in the ViT
    blocks); the explicit list of ``model.weights`` covers every weight.
    """
    return {"model": model, "model_weights": list(model.weights)}


def restore_model(model, path: str) -> None:
    """Restores every weight of ``model`` from a checkpoint (optimizer state ignored)."""
    status = tf.train.Checkpoint(**model_trackables(model)).restore(path)
    status.assert_existing_objects_matched()  # every model weight comes from the checkpoint
    status.expect_partial()  # the optimizer state and step are not needed


class Checkpoints:
    """Saves and restores model, optimizer and step.

    Args:
        workdir: the run's directory.
        model, optimizer: the objects to save (optimizer state included).
        keep: how many recent checkpoints to keep.
        chief: only the chief writes into ``workdir``; other workers of a
            multi-worker run write to a private temporary folder they delete
            (every worker must take part in a distributed save).
    """

    def __init__(self, workdir: str, model, optimizer, keep: int = 3, chief: bool = True):
        self.directory = os.path.join(workdir, CHECKPOINT_DIR)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.checkpoint = tf.train.Checkpoint(
            **model_trackables(model), optimizer=optimizer, step=self.step
        )
        self.chief = chief
        directory = self.directory
        if not chief:
            directory = os.path.join(self.directory, f".worker_tmp_{os.getpid()}")
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=keep)
        self.model = model

    @property
    def latest(self) -> str | None:
        return tf.train.latest_checkpoint(self.directory)

    def restore_or_initialize(self, init_from: str | None = None) -> int:
        """Restores the newest checkpoint of the workdir, else ``init_from``'s weights.

        Returns:
            The step to continue from (0 for a new run).
        """
        latest = self.latest
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
            log.info("resumed from %s at step %d", latest, int(self.step))
            return int(self.step)
        if init_from:
            path = resolve_checkpoint(init_from)
            restore_model(self.model, path)
            log.info("initialised model weights from %s", path)
        return 0

    def save(self, step: int) -> str:
        self.step.assign(step)
        path = self.manager.save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return path


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix from a prefix, a checkpoint folder or a workdir."""
    for directory in (os.path.join(path, CHECKPOINT_DIR), path):
        if os.path.isdir(directory):
            latest = tf.train.latest_checkpoint(directory)
            if latest:
                return latest
    if tf.io.gfile.exists(path + ".index"):
        return path
    raise FileNotFoundError(f"no checkpoint found at {path!r} (a prefix, folder or workdir)")


def git_revision() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_run_info(workdir: str, seed: int, start_step: int) -> None:
    """Appends this start (seed, git revision, versions, command) to ``run_info.json``."""
    path = os.path.join(workdir, "run_info.json")
    starts = []
    if os.path.exists(path):
        with open(path) as f:
            starts = json.load(f).get("starts", [])
    starts.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "start_step": start_step,
            "seed": seed,
            "git_revision": git_revision(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "command": sys.argv,
        }
    )
    with open(path + ".tmp", "w") as f:
        json.dump({"seed": seed, "starts": starts}, f, indent=2)
    os.replace(path + ".tmp", path)


class PreemptionFlag:
    """Context manager turning SIGTERM/SIGINT/SIGUSR2 into a flag the loop polls.

    SIGUSR2 is what SLURM sends ahead of a job's time limit with
    ``--signal=USR2@<seconds>`` (submitit asks for it); ``signal`` keeps the name
    of the first signal received (e.g. ``"SIGUSR2"``), None before any.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)

    def __init__(self):
        self.raised = False
        self.signal: str | None = None
        self._previous = {}

    def _handler(self, signum, frame):
        log.warning("received signal %d: will checkpoint and stop", signum)
        self.raised = True
        self.signal = self.signal or signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


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
