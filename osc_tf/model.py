"""ObjectCentricModel: a backbone, an optional object branch and a global branch.

Architectures are compositions of parts, chosen in gin (``gin/model/``):

- ``global_only``: backbone pooling → global function → global projection.
- ``parallel``: the same, plus an object branch on the backbone tokens:
  queries → object function → object projection.
- ``slots_to_global``: the object branch first; the global function takes
  the mean of the slots (``global_from_slots=True``; backbone pooling
  ``avg``). The original study's default.

Training: ``compile(optimizer, objective)`` then ``train_step``/``test_step`` on
two-view batches ``{"images": [2B, H, W, 3]}`` (rows ``0..B-1`` view 0, rows
``B..2B-1`` view 1 of the same images). They work with ``model.fit`` on one
device and with ``strategy.run(model.train_step, ...)`` under any strategy
(osc_tf.training); inside a replica, loss values are that replica's share of the
global-batch mean (osc_tf.losses), so summing them over replicas gives the loss.
"""

import keras
import tensorflow as tf
from keras import ops

OUTPUT_KEYS = ("backbone_tokens", "global_features", "global_projection")
OBJECT_OUTPUT_KEYS = ("slots", "slot_projection", "attention", "attention_steps")
# Parts that ``compile(jit_compile_parts=...)`` may XLA-compile on their own.
JIT_PARTS = ("backbone", "object_fn")
_PARTS = (
    "backbone",
    "global_fn",
    "global_proj",
    "queries",
    "object_fn",
    "object_proj",
    "global_pool",
    "decoder",
)


@keras.saving.register_keras_serializable(package="osc_tf")
class ObjectCentricModel(keras.Model):
    """Global and object-centric representations of images.

    Args:
        backbone: ``call(images, training) -> {"tokens": [B, N, D], "pooled": [B, D]}``,
            e.g. ``ViT``; it must expose ``positional_embedding(height, width)`` if
            ``object_pos_embedding`` is set.
        global_fn: ``[B, D] -> [B, D]`` (e.g. ``MLPHead(hidden_mult=2)``).
        global_proj: ``[B, D] -> [B, E]`` (e.g. ``MLPHead(hidden_mult=2, out_bias=False)``).
        queries: query generator ``call(tokens, num_slots=None, training=False) -> [B, K, D]``;
            None for an architecture without objects.
        object_fn: ``call(queries, tokens, training=False, all_steps=False) ->
            (slots [B, K, D], attention [B, K, N])``, with ``all_steps=True`` every
            iteration's or layer's attention ``[B, T, K, N]``; None together with
            ``queries``.
        object_proj: ``[B, K, D] -> [B, K, E]``; None together with ``queries``.
        global_from_slots: the global branch reads the slots instead of the
            backbone (needs the object branch and a backbone without CLS pooling).
        global_pool: optional set pooling ``[B, M, D] -> [B, D]`` applied to the
            backbone tokens (or the slots) instead of the backbone's pooled
            vector (or the mean of the slots), e.g. ``CrossAttentionPool``.
        object_pos_embedding: add the backbone's positional embedding to the
            tokens given to the object function (queries still see raw tokens).
        decoder: optional ``call(slots, attention, images, training) -> {"masks",
            "reconstruction", "reconstruction_target"}`` (e.g. ``MaskDecoder``), the
            slots' decoder for the reconstruction objective and pixel masks; needs
            the object branch.
        decoder_views: 2 decodes every row; 1 decodes, when training, only the
            first half of the rows — the first view of a two-view batch, whose rows
            are view-major (rows 0..B-1 view 0, B..2B-1 view 1, per replica), so the
            reconstruction term is the first view's and the decoder costs half.
            Inference (``training=False``) decodes every row either way.

    Call:
        images: ``[B, H, W, 3]`` normalised float32 images.
        training: Python bool.
        num_slots: K for query generators that allow choosing it per call.

    Returns:
        A dict of float32 tensors: ``backbone_tokens [B, N, D]``,
        ``global_features [B, D]``, ``global_projection [B, E]`` and, with an
        object branch, ``slots [B, K, D]``, ``slot_projection [B, K, E]``,
        ``attention [B, K, N]`` (the last iteration's or layer's) and
        ``attention_steps [B, T, K, N]`` (every iteration's or layer's); with a
        decoder ``masks [B, K, H, W]`` (sum to 1 over K), ``reconstruction
        [B, R, R, 3]`` and ``reconstruction_target [B, R, R, 3]`` (B/2 rows, the
        first view's, when training with ``decoder_views=1``).
    """

    def __init__(
        self,
        backbone,
        global_fn,
        global_proj,
        queries=None,
        object_fn=None,
        object_proj=None,
        global_from_slots: bool = False,
        global_pool=None,
        object_pos_embedding: bool = False,
        decoder=None,
        decoder_views: int = 2,
        **kwargs,
    ):
        super().__init__(**kwargs)
        object_parts = {"queries": queries, "object_fn": object_fn, "object_proj": object_proj}
        missing = [name for name, part in object_parts.items() if part is None]
        if missing and len(missing) < len(object_parts):
            raise ValueError(
                f"The object branch needs queries, object_fn and object_proj together; "
                f"missing: {missing}. Leave all three unset for a global-only model."
            )
        if missing and (global_from_slots or object_pos_embedding or decoder is not None):
            raise ValueError(
                "global_from_slots, object_pos_embedding and decoder need an object branch "
                "(queries, object_fn, object_proj)."
            )
        if decoder_views not in (1, 2) or isinstance(decoder_views, bool):
            raise ValueError(
                f"ObjectCentricModel.decoder_views must be 1 (the first view) or 2 (both), "
                f"got {decoder_views!r}"
            )
        if global_from_slots and getattr(backbone, "pooling", None) == "cls":
            raise ValueError(
                "global_from_slots=True ignores the backbone's CLS token; use pooling='avg'."
            )
        self.backbone = backbone
        self.global_fn = global_fn
        self.global_proj = global_proj
        self.queries = queries
        self.object_fn = object_fn
        self.object_proj = object_proj
        self.global_from_slots = global_from_slots
        self.global_pool = global_pool
        self.object_pos_embedding = object_pos_embedding
        self.decoder = decoder
        self.decoder_views = decoder_views

    @property
    def has_objects(self) -> bool:
        """Whether the model has an object branch (slots, projections, attention)."""
        return self.queries is not None

    def build(self, images_shape):
        # Builds every part, inside the current tf.distribute strategy scope if any.
        self.compute_output_spec(keras.KerasTensor(images_shape))
        self.built = True

    def call(self, images, training=False, num_slots=None):
        features = self._part("backbone", training)(images, training=training)
        tokens = features["tokens"]  # [B, N, D]
        outputs = {"backbone_tokens": tokens}
        if self.has_objects:
            queries = self.queries(tokens, num_slots=num_slots, training=training)  # [B, K, D]
            object_tokens = tokens
            if self.object_pos_embedding:
                pos = self.backbone.positional_embedding(images.shape[1], images.shape[2])
                object_tokens = tokens + ops.cast(pos, tokens.dtype)  # [B, N, D]
            slots, steps = self._part("object_fn", training)(
                queries, object_tokens, training=training, all_steps=True
            )  # [B, K, D], [B, T, K, N]
            outputs["slots"] = slots  # [B, K, D]
            outputs["slot_projection"] = self.object_proj(slots, training=training)  # [B, K, E]
            attention = steps[:, -1]  # [B, K, N]
            outputs["attention"] = attention
            outputs["attention_steps"] = steps  # [B, T, K, N]
            if self.decoder is not None:
                decoded = (slots, attention, images)
                if training and self.decoder_views == 1:
                    half = ops.shape(images)[0] // 2  # the first view's rows
                    decoded = tuple(x[:half] for x in decoded)
                outputs |= self.decoder(*decoded, training=training)
        if self.global_pool is not None:
            pooled_set = slots if self.global_from_slots else tokens  # [B, K or N, D]
            pooled = self.global_pool(pooled_set, training=training)
        elif self.global_from_slots:
            pooled = ops.mean(slots, axis=1)  # [B, D]
        else:
            pooled = features["pooled"]  # [B, D]
        global_features = self.global_fn(pooled, training=training)  # [B, D]
        outputs["global_features"] = global_features
        outputs["global_projection"] = self.global_proj(global_features, training=training)
        return {key: ops.cast(value, "float32") for key, value in outputs.items()}

    # --- training ------------------------------------------------------------

    def _part(self, name: str, training: bool):
        """The part ``name`` as called in the forward: its XLA-compiled function when
        training with ``compile(jit_compile_parts=...)`` naming it, else the layer."""
        compiled = self.__dict__.get("_jit_parts", {}).get(name) if training else None
        return _in_halves(compiled) if compiled else getattr(self, name)

    def compile(
        self,
        optimizer,
        objective,
        jit_compile_forward: bool = False,
        jit_compile_parts: tuple[str, ...] = (),
        **kwargs,
    ):
        """Sets the optimizer and the objective (``osc_tf.losses.Objective``).

        Args:
            optimizer: a Keras optimizer (a ``LossScaleOptimizer`` for float16).
            objective: ``objective(outputs) -> {"loss": ..., "loss_<term>": ..., ...}``.
            jit_compile_forward: XLA-compile the forward pass (and, through the
                gradient tape, its backward pass) per replica. Keras'
                ``compile(jit_compile=True)`` fails under MirroredStrategy, and the
                losses' cross-replica gathers cannot run inside XLA, so only the
                model's forward is compiled; the matching is XLA-compiled on its own.
            jit_compile_parts: parts of ``JIT_PARTS`` to XLA-compile each on its own
                (with its gradient) in training steps, the rest running op by op;
                ignored with ``jit_compile_forward``. On a CPU the object function
                (slot attention's GRU and MLP on ``[B, K, D]``: many small ops) is
                faster compiled at every size measured; the backbone at the
                quickstart's 64×64 crops but not at the default's 128×128, and the
                mask decoder is slower compiled (docs/benchmarks.md, "Training
                step"). Inference (``training=False``) and exports never use them.
        """
        unknown = set(jit_compile_parts) - set(JIT_PARTS)
        if isinstance(jit_compile_parts, str) or unknown:
            raise ValueError(
                f"jit_compile_parts must be a tuple of names in {JIT_PARTS}, "
                f"got {jit_compile_parts!r}"
            )
        super().compile(optimizer=optimizer, jit_compile=False, **kwargs)
        self.objective = objective
        self.jit_compile_forward = jit_compile_forward
        self._forward_fn = self.__call__
        if jit_compile_forward:
            self._forward_fn = tf.function(self.__call__, jit_compile=True, reduce_retracing=True)
        # Kept out of Keras' and TensorFlow's tracking (checkpoints, SavedModels).
        self.__dict__["_jit_parts"] = {
            name: tf.function(getattr(self, name).__call__, jit_compile=True, reduce_retracing=True)
            for name in jit_compile_parts
            if not jit_compile_forward and getattr(self, name) is not None
        }

    def _compute_losses(self, images, training: bool) -> tuple[dict, dict]:
        outputs = self._forward_fn(images, training=training)
        terms = self.objective(outputs)
        return outputs, {k: v for k, v in terms.items() if k.startswith("loss")}

    def train_step(self, data, metrics: bool = True):
        """One optimizer step on a two-view batch; returns losses and health metrics.

        Args:
            data: ``{"images": [2B, S, S, 3]}`` or the images.
            metrics: also return ``grad_norm`` and ``param_norm`` (with several
                replicas the gradient norm costs an all-reduce of its own).

        Returns:
            ``loss`` (weighted total), one ``loss_<term>`` per term, ``learning_rate``,
            and with ``metrics``: ``grad_norm`` (global norm of the gradient of the
            global-batch loss) and ``param_norm`` (global norm of the trainable weights).
        """
        images = data["images"] if isinstance(data, dict) else data
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            _, losses = self._compute_losses(images, training=True)
            scaled = self.optimizer.scale_loss(losses["loss"])
        grads = tape.gradient(scaled, variables)
        learning_rate = ops.convert_to_tensor(self.optimizer.learning_rate, "float32")
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        if not metrics:
            return {**losses, "learning_rate": learning_rate}
        return {
            **losses,
            "learning_rate": learning_rate,  # the rate this step used
            "grad_norm": _global_grad_norm(grads)
            / ops.cast(self.optimizer.scale_loss(1.0), "float32"),
            "param_norm": tf.linalg.global_norm([ops.cast(v, "float32") for v in variables]),
        }

    def test_step(self, data):
        """The losses on a two-view batch, without updating anything."""
        images = data["images"] if isinstance(data, dict) else data
        return self._compute_losses(images, training=False)[1]

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable}
        config["dtype"] = keras.saving.serialize_keras_object(self.dtype_policy)
        for part in _PARTS:
            layer = getattr(self, part)
            config[part] = None if layer is None else keras.saving.serialize_keras_object(layer)
        config.update(
            global_from_slots=self.global_from_slots,
            object_pos_embedding=self.object_pos_embedding,
            decoder_views=self.decoder_views,
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for part in _PARTS:
            if config.get(part) is not None:
                config[part] = keras.saving.deserialize_keras_object(
                    config[part], custom_objects=custom_objects
                )
        if "dtype" in config and isinstance(config["dtype"], dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)


def _in_halves(part):
    """``part`` (an XLA-compiled function) called on each half of the batch (in training,
    the two views) with the halves of its outputs concatenated.

    TensorFlow's executor runs the two calls, and their gradients, at the same time: an
    XLA:CPU program keeps one core busy better than two, so on 2 cores the quickstart's
    backbone forward + backward took 35 ms as two half calls against 41-50 ms as one
    (62-77 ms with one intra-op thread; docs/benchmarks.md). Each image's result is the
    same function of its inputs either way. Every positional argument is batch-leading;
    a batch not known to be even (an odd one, or unknown when traced) is one call.
    """

    def call(*args, **kwargs):
        batch = args[0].shape[0]
        if batch is None or batch % 2:
            return part(*args, **kwargs)
        halves = [tf.split(arg, 2) for arg in args]
        outputs = [part(*(h[i] for h in halves), **kwargs) for i in range(2)]
        return tf.nest.map_structure(lambda a, b: tf.concat([a, b], axis=0), *outputs)

    return call


def _global_grad_norm(grads) -> tf.Tensor:
    """Norm of the gradient of the global-batch loss (summed over replicas)."""
    grads = [ops.cast(g, "float32") for g in grads if g is not None]
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    return tf.linalg.global_norm(grads)
