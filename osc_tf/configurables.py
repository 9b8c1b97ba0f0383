"""The ONE place where osc_tf classes and functions are registered with gin.

Library code stays plain Python (``@gin.configurable`` on a Keras 3 Layer
subclass crashes, and ``import gin.tf`` fails on TF 2.21); gin files and
``--gin_param`` refer to the names registered here, e.g. ``ViT.embed_dim = 64``
or ``ObjectCentricModel.queries = @LearnedQueries()``. Registered copies carry
the bindings: library code that needs a configured object fetches it with
``gin.get_configurable(name)`` (the original functions and classes ignore gin).

Importing this module registers everything; ``osc_tf.config.parse`` does it.
"""

import gin
import keras

from osc_tf import losses, model, schedules, training
from osc_tf.data import augment, pipelines
from osc_tf.evaluation import figures, run, segmentation, vqa
from osc_tf.layers import decoders, heads, queries, slot_attention, vit

_REGISTERED = (
    # data (osc_tf.data)
    pipelines.MultiObjectData,
    augment.TwoViewAugment,
    # layers (osc_tf.layers)
    vit.ViT,
    queries.LearnedQueries,
    queries.GaussianQueries,
    queries.KMeansQueries,
    slot_attention.SlotAttention,
    decoders.CrossAttentionDecoder,
    decoders.CoAttentionDecoder,
    heads.MLPHead,
    heads.CrossAttentionPool,
    # model architectures (osc_tf.model): composed in gin/model/
    model.ObjectCentricModel,
    # losses (osc_tf.losses): gin/losses/*.gin pick the terms by reference,
    # e.g. ``Objective.global_loss = @global_contrastive``.
    losses.global_contrastive,
    losses.global_similarity,
    losses.object_contrastive_all,
    losses.object_contrastive_image,
    losses.object_similarity,
    losses.Objective,
    # optimisation and training (osc_tf.training): ``train.optimizer = @AdamW``
    # (the class; train passes the learning-rate schedule).
    training.train,
    schedules.WarmupDecay,
    keras.optimizers.AdamW,
    keras.optimizers.Adam,
    keras.optimizers.SGD,
    # evaluation (osc_tf.evaluation); gin/eval/original.gin is the original study's
    # protocol. ``evaluate`` is registered below with only its protocol parameters.
    vqa.linear_probe,
    segmentation.SegmentationMetrics,
    figures.segmentation_figures,
)

for _obj in _REGISTERED:
    gin.external_configurable(_obj, name=_obj.__name__)

# ``evaluate.*`` names the protocol, picks the scored attention step and the headline
# AP; its other parameters are set by the caller (``evaluate_run``), so binding them
# would have no effect and is refused.
gin.external_configurable(
    run.evaluate,
    name="evaluate",
    allowlist=["num_figures", "protocol", "attention_step", "headline_ap"],
)
