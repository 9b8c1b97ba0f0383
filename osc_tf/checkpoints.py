"""Checkpoints of a run: model, optimizer and step in ``workdir/checkpoints``.

``tf.train.CheckpointManager`` writes a checkpoint's files first and only then
atomically updates the ``checkpoint`` index file, so a save interrupted half-way
never replaces the last good checkpoint; restoring always reads the index.
"""

from __future__ import annotations

import logging
import os
import shutil

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
