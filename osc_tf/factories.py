"""Building a run's parts from gin, and reloading them from a workdir.

Training, evaluation and export build the model and the data the same way:
``ObjectCentricModel`` and ``MultiObjectData`` with their gin bindings. A
workdir's ``operative_config.gin`` re-creates both; its newest checkpoint (or a
given one) restores the weights.
"""

from __future__ import annotations

import gin
import keras
import tensorflow as tf

from osc_tf import config
from osc_tf.checkpoints import resolve_checkpoint, restore_model


def build_model(seed: int, crop_size: int):
    """The configured ``ObjectCentricModel``, built for ``crop_size`` images.

    Seeds Keras first, so the same seed gives the same initial weights (the
    model at initialisation that evaluation reports beside the trained one).
    """
    keras.utils.set_random_seed(seed)
    model = gin.get_configurable("ObjectCentricModel")()
    model.build((None, crop_size, crop_size, 3))
    return model


def build_data():
    """The configured ``MultiObjectData``."""
    return gin.get_configurable("MultiObjectData")()


def train_parameter(name: str, default=None):
    """A bound ``train.<name>`` of the parsed configuration, else ``default``."""
    try:
        return gin.query_parameter(f"train.{name}")
    except ValueError:
        return default


def load(workdir: str, checkpoint: str | None = None, gin_params=()) -> dict:
    """Re-creates a run's model (restored weights), data and seed from its workdir.

    Args:
        workdir: a training run's directory.
        checkpoint: a checkpoint prefix; default the workdir's newest.
        gin_params: extra bindings applied after the stored configuration.

    Returns:
        ``{"model", "data", "seed", "step", "checkpoint"}``.
    """
    config.read_workdir(workdir, gin_params)
    seed = train_parameter("seed", 0)
    data = build_data()
    model = build_model(seed, data.crop_size)
    path = resolve_checkpoint(checkpoint or workdir)
    restore_model(model, path)
    step = int(tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    return {"model": model, "data": data, "seed": seed, "step": step, "checkpoint": path}
