"""The gin names of the library, and ``register``, the one way osc_tf registers a name.

Library code stays plain Python (``@gin.configurable`` on a Keras 3 Layer
subclass crashes, and ``import gin.tf`` fails on TF 2.21); gin files and
``--gin_param`` refer to registered names, e.g. ``ViT.embed_dim = 64`` or
``ObjectCentricModel.queries = @LearnedQueries()``. Registered copies carry the
bindings: code that needs a configured object fetches it with
``gin.get_configurable(name)`` (the original functions and classes ignore gin).

Importing this module registers the library below the training loop: layers,
the model, losses, schedules, data and optimizers. It imports nothing above
them (no training, evaluation, export or matplotlib). The names of a run are
registered by the modules that run them: ``train`` by ``osc_tf.training``;
``evaluate``, ``linear_probe``, ``SegmentationMetrics`` and
``segmentation_figures`` by ``osc_tf.evaluation.run``. ``REGISTERED`` lists what
is registered so far (``osc_tf.config`` checks and describes bindings with it).
"""

from collections.abc import Callable, Sequence

import gin
import keras

from osc_tf import losses, model, optimizers, schedules
from osc_tf.data import augment, pipelines
from osc_tf.layers import decoders, heads, mask_decoder, queries, slot_attention, vit

#: Every name registered with gin by osc_tf: name -> the plain function or class.
REGISTERED: dict[str, Callable] = {}


def register(obj: Callable, name: str | None = None, allowlist: Sequence[str] | None = None):
    """Registers ``obj`` with gin as ``name`` (default: its ``__name__``), once.

    Registering the same object again under the same name does nothing; another
    object under a taken name is an error.
    """
    name = name or obj.__name__
    if name in REGISTERED:
        if REGISTERED[name] is not obj:
            raise ValueError(f"the gin name {name!r} is already registered for {REGISTERED[name]}")
        return
    gin.external_configurable(obj, name=name, allowlist=allowlist)
    REGISTERED[name] = obj


for _obj in (
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
    mask_decoder.MaskDecoder,
    # model architectures (osc_tf.model): composed in gin/model/
    model.ObjectCentricModel,
    # losses (osc_tf.losses): gin/losses/*.gin pick the terms by reference,
    # e.g. ``Objective.global_loss = @global_contrastive``.
    losses.global_contrastive,
    losses.global_similarity,
    losses.object_contrastive_all,
    losses.object_contrastive_image,
    losses.object_similarity,
    losses.reconstruction_mse,
    losses.Objective,
    # optimisation: ``train.optimizer = @TorchAdamW`` (the class; train passes the
    # schedule). TorchAdamW is the original's update rule; Keras' own are here too.
    schedules.WarmupDecay,
    optimizers.TorchAdamW,
    keras.optimizers.AdamW,
    keras.optimizers.Adam,
    keras.optimizers.SGD,
):
    register(_obj)
