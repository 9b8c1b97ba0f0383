"""SavedModel export with named endpoints (``keras.export.ExportArchive``).

Endpoints (each returns a dict; ``embed`` is also ``serving_default``):

    embed(images uint8 [B,H,W,3])
        -> global_features [B,D], global_projection [B,E]
    objects(images uint8 [B,H,W,3], num_slots int32 [])
        -> slots [B,K,D], slot_projection [B,K,E], masks [B,K,H,W],
           attention_masks [B,K,H,W]

Images of any size: the centre square is cropped, resized to the training crop
size and normalised inside the graph (``preprocess_for_inference``).
``attention_masks`` are each slot's attention upsampled to the centre square of
the input; ``masks`` are the decoder's masks (a model with a ``MaskDecoder``)
resized to it, else the same as ``attention_masks``. Both are placed at the
square's position in the input (zero outside it), so they align with the input
pixels; a decoder's masks sum to 1 over slots inside the square. ``num_slots``
is free for Gaussian and k-means queries and must equal the trained K for
learned queries. Gaussian queries sample with
their fixed inference seed, so outputs are deterministic.

A client needs only TensorFlow::

    import tensorflow as tf
    model = tf.saved_model.load("runs/a/export")
    out = model.objects(images, num_slots=tf.constant(7))
    masks = out["masks"]  # [B, 7, H, W]
"""

from __future__ import annotations

import os
import shutil

import keras
import tensorflow as tf

from osc_tf.data.pipelines import preprocess_for_inference
from osc_tf.evaluation.segmentation import slot_maps
from osc_tf.layers.queries import LearnedQueries

EXPORT_DIR = "export"
IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
NUM_SLOTS_SPEC = tf.TensorSpec([], tf.int32, name="num_slots")


def _masks_at_input(maps: tf.Tensor, images: tf.Tensor) -> tf.Tensor:
    """Slot attention [B,K,N] or masks [B,K,S,S] → [B,K,H,W] over the input's centre square,
    0 elsewhere."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    side = tf.minimum(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = slot_maps(maps, side)  # [B, K, side, side]
    return tf.pad(
        square, [[0, 0], [0, 0], [top, height - side - top], [left, width - side - left]]
    )  # [B, K, H, W]


def build_archive(model, crop_size: int) -> keras.export.ExportArchive:
    """The export archive of ``model`` for images centre-cropped to ``crop_size``."""
    learned_k = model.queries.num_slots if isinstance(model.queries, LearnedQueries) else None

    def embed(images):
        outputs = model(preprocess_for_inference(images, crop_size), training=False)
        return {k: outputs[k] for k in ("global_features", "global_projection")}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("embed", embed, input_signature=[IMAGES_SPEC])
    if not model.has_objects:
        return archive

    def objects(images, num_slots):
        checks = []
        if learned_k is not None:
            checks.append(
                tf.debugging.assert_equal(
                    num_slots,
                    learned_k,
                    message=f"this model has {learned_k} learned queries: num_slots must be "
                    f"{learned_k} (Gaussian or k-means queries allow other values)",
                )
            )
        checks.append(tf.debugging.assert_positive(num_slots, message="num_slots must be >= 1"))
        with tf.control_dependencies(checks):
            x = preprocess_for_inference(images, crop_size)
        slots_arg = learned_k if learned_k is not None else num_slots
        outputs = model(x, training=False, num_slots=slots_arg)
        attention_masks = _masks_at_input(outputs["attention"], images)
        return {
            "slots": outputs["slots"],
            "slot_projection": outputs["slot_projection"],
            "masks": _masks_at_input(outputs["masks"], images)
            if "masks" in outputs
            else attention_masks,
            "attention_masks": attention_masks,
        }

    archive.add_endpoint("objects", objects, input_signature=[IMAGES_SPEC, NUM_SLOTS_SPEC])
    return archive


def export_model(model, workdir: str, crop_size: int, out: str | None = None) -> str:
    """Writes the SavedModel to ``out`` (default ``workdir/export``) atomically.

    The archive is written next to the destination first and renamed over it
    only when complete, so an interrupted export never replaces a good one.
    """
    out = out or os.path.join(workdir, EXPORT_DIR)
    tmp = out.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    build_archive(model, crop_size).write_out(tmp, verbose=False)
    old = out.rstrip("/") + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(out):
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
    return out
