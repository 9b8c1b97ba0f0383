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
# gin/losses/*.gin pick the terms by reference, e.g.
#   Objective.global_loss = @global_contrastive
#   global_contrastive.temperature = 0.1
# isort: split
from osc_tf import losses  # noqa: E402

for _loss in (
    losses.global_contrastive,
    losses.global_similarity,
    losses.object_contrastive_all,
    losses.object_contrastive_image,
    losses.object_similarity,
):
    gin.external_configurable(_loss, name=_loss.__name__)
gin.external_configurable(losses.Objective, name="Objective")


# --- optimisation and training (osc_tf.training) ------------------------------


# --- evaluation and export (osc_tf.evaluation, osc_tf.export) -----------------
# An orchestrator takes these by reference (``evaluate.probe = @linear_probe``) or
# fetches the configured callables with ``gin.get_configurable("linear_probe")``, e.g.
#   linear_probe.num_steps = 2000
#   linear_probe.pos_weight = 14.0
#   SegmentationMetrics.match_background = True
#   segmentation_figures.num_images = 4
# isort: split
from osc_tf.evaluation import figures, segmentation, vqa  # noqa: E402

gin.external_configurable(vqa.linear_probe, name="linear_probe")
gin.external_configurable(segmentation.SegmentationMetrics, name="SegmentationMetrics")
gin.external_configurable(figures.segmentation_figures, name="segmentation_figures")
