"""Figures of slot attention: each slot's attention map over the image.

Used by training (every ``train.viz_interval``) for TensorBoard.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from osc_tf.evaluation.segmentation import upsample_attention  # noqa: E402


def attention_figure(images: np.ndarray, attention: np.ndarray, max_images: int = 8) -> bytes:
    """PNG bytes: one row per image — the image, then each slot's attention over it.

    Args:
        images: ``[B,S,S,3]`` floats in [0, 1] (square crops).
        attention: ``[B,K,N]`` slot attention over the ``N`` patch tokens.
    """
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)[:max_images]
    b, h, w, _ = images.shape
    maps = upsample_attention(np.asarray(attention)[:b], h).numpy()  # [B, K, H, W]
    # Each map scaled to its own maximum: decoders' attention sums to 1 over tokens.
    maps = maps / np.maximum(maps.max(axis=(2, 3), keepdims=True), 1e-12)
    k = maps.shape[1]
    fig, axes = plt.subplots(b, k + 1, figsize=(1.3 * (k + 1), 1.3 * b), squeeze=False)
    for i in range(b):
        axes[i, 0].imshow(images[i])
        for s in range(k):
            axes[i, s + 1].imshow(images[i] * (0.25 + 0.75 * maps[i, s][..., None]))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for s in range(k):
        axes[0, s + 1].set_title(f"slot {s}", fontsize=7)
    fig.tight_layout(pad=0.1)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()
