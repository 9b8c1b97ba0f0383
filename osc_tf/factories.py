"""Building a run's parts from the parsed gin configuration.

Training, evaluation, export and reloading a run (``osc_tf.training.load``) build
the model and the data the same way: ``ObjectCentricModel`` and
``MultiObjectData`` with their gin bindings.
"""

from __future__ import annotations

import gin
import keras

import osc_tf.configurables  # noqa: F401  (registers the names built here)


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
