"""The ONE place where osc_tf classes and functions are registered with gin.

Library code stays plain Python (``@gin.configurable`` on a Keras 3 Layer
subclass crashes, and ``import gin.tf`` fails on TF 2.21); gin files and
``--gin_param`` refer to the names registered here, e.g. ``ViT.embed_dim = 64``
or ``ObjectCentricModel.queries = @LearnedQueries()``.

Import this module before parsing any gin file.
"""

import gin

import osc_tf  # noqa: F401  (sets KERAS_BACKEND before keras is imported)


# --- data (osc_tf.data) -------------------------------------------------------
def _register_data() -> None:
    """``MultiObjectData`` (gin/data/*.gin pick the dataset) and ``TwoViewAugment``."""
    from osc_tf.data import augment, pipelines

    gin.external_configurable(pipelines.MultiObjectData)
    gin.external_configurable(augment.TwoViewAugment)


_register_data()


# --- layers (osc_tf.layers) ---------------------------------------------------


# --- model architectures (osc_tf.model) ---------------------------------------


# --- losses (osc_tf.losses) ----------------------------------------------------


# --- optimisation and training (osc_tf.training) ------------------------------


# --- evaluation and export (osc_tf.evaluation, osc_tf.export) -----------------
