"""Compact encoding of a multi-object example (numpy and Pillow only, no TensorFlow).

The prepared (TFDS) datasets store each example as:

    image         PNG bytes of the uint8 image [H, W, C]
    segmentation  PNG bytes of a label map [H, W, 1] uint8: the index of the entity
                  whose mask is 255 at that pixel, NO_OWNER (255) where none is
    mask_stack    uint8 [0, H, W, 1] when the label map reproduces the masks
                  exactly (values 0/255, at most one owner per pixel), otherwise the
                  full official stack [E, H, W, 1]
    visibility    bool [E] (the native files store float32 0/1)
    other attributes unchanged.

The in-graph decoder is ``osc_tf.data.tfds_builder.official``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

NO_OWNER = 255


def encode_png(image: np.ndarray, compress_level: int = 1) -> bytes:
    """uint8 [H, W, C] (C = 1 or 3) -> PNG bytes (fast zlib level by default)."""
    array = image[..., 0] if image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(
        buffer, format="PNG", compress_level=compress_level
    )
    return buffer.getvalue()


def label_map(mask: np.ndarray) -> tuple[np.ndarray, bool]:
    """Masks uint8 [E, H, W, 1] -> (label map uint8 [H, W, 1], exact).

    ``exact`` says whether ``one_hot(labels) * 255`` (with NO_OWNER -> no entity)
    equals ``mask``: every value is 0 or 255 and no pixel has two owners.
    """
    if mask.shape[0] >= NO_OWNER:
        raise ValueError(f"too many entities for a uint8 label map: {mask.shape[0]}")
    on = mask[..., 0] == 255  # [E, H, W]
    owners = on.sum(axis=0)  # [H, W]
    exact = bool(owners.max(initial=0) <= 1) and bool(np.all(on | (mask[..., 0] == 0)))
    labels = np.where(owners == 0, NO_OWNER, on.argmax(axis=0)).astype(np.uint8)
    return labels[..., None], exact


def compact(example: dict[str, np.ndarray]) -> dict:
    """An official-layout example (image, mask [E,H,W,1], attributes) -> stored form."""
    mask = example["mask"]
    labels, exact = label_map(mask)
    out = {k: v for k, v in example.items() if k not in ("image", "mask")}
    out["image"] = encode_png(example["image"])
    out["segmentation"] = encode_png(labels)
    out["mask_stack"] = mask[:0] if exact else mask
    if "visibility" in out:
        out["visibility"] = np.asarray(out["visibility"]) != 0
    return out
