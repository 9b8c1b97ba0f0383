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


# --- layers (osc_tf.layers) ---------------------------------------------------
def _register_layers() -> None:
    from osc_tf.layers import decoders, heads, queries, slot_attention, vit

    for layer_cls in (
        vit.ViT,
        queries.LearnedQueries,
        queries.GaussianQueries,
        queries.KMeansQueries,
        slot_attention.SlotAttention,
        decoders.CrossAttentionDecoder,
        decoders.CoAttentionDecoder,
        heads.MLPHead,
        heads.CrossAttentionPool,
    ):
        gin.external_configurable(layer_cls)


_register_layers()


# --- model architectures (osc_tf.model) ---------------------------------------
def _register_model() -> None:
    from osc_tf.model import ObjectCentricModel

    gin.external_configurable(ObjectCentricModel)


_register_model()


# --- losses (osc_tf.losses) ----------------------------------------------------


# --- optimisation and training (osc_tf.training) ------------------------------


# --- evaluation and export (osc_tf.evaluation, osc_tf.export) -----------------
