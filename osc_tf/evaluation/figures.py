"""Every figure of a run as PNG bytes: slot attention, segmentation grids, probe curves.

Drawn on matplotlib ``Figure`` objects with the Agg canvas: no pyplot state, and
the user's matplotlib backend is left alone. PNG bytes go to files as they are
and to TensorBoard through ``tf.summary.image(name, tf.image.decode_png(png)[None])``.
Training draws ``attention_figure`` every ``train.viz_interval``; evaluation the
segmentation grids and the probe's curves.
"""

import io

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from osc_tf.data.augment import IMAGENET_MEAN, IMAGENET_STD, denormalize
from osc_tf.evaluation.segmentation import slot_maps
from osc_tf.evaluation.vqa import ProbeResult

CELL_INCHES = 1.5  # side of one panel of the segmentation grid
DPI = 80
_ROWS = ("image", "attention", "Otsu mask", "overlay", "ground truth")


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def attention_figure(images: np.ndarray, attention: np.ndarray, max_images: int = 8) -> bytes:
    """One row per image: the image, then each slot's attention over it.

    Args:
        images: ``[B, S, S, 3]`` floats in [0, 1] (square crops).
        attention: ``[B, K, N]`` slot attention over the ``N`` patch tokens, or a
            decoder's masks ``[B, K, R, R]``.

    Returns:
        PNG bytes.
    """
    images = np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0)[:max_images]
    b, h, w, _ = images.shape
    maps = slot_maps(tf.constant(np.asarray(attention)[:b]), h).numpy()  # [B, K, H, W]
    # Each map scaled to its own maximum: decoders' attention sums to 1 over tokens.
    maps = maps / np.maximum(maps.max(axis=(2, 3), keepdims=True), 1e-12)
    k = maps.shape[1]
    panels = np.concatenate([images[:, None], images[:, None] * (0.25 + 0.75 * maps[..., None])], 1)
    # One image of all the panels in one Axes: a grid of b·(K+1) Axes took seconds to draw.
    fig = Figure(figsize=(1.3 * (k + 1), 1.3 * b))
    title = min(0.2 / (1.3 * b), 0.5)  # a 0.2-inch band for the slots' titles
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - title))
    ax.imshow(_grid(panels), interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    for s in range(k):
        fig.text(
            (s + 1.5) / (k + 1), 1.0 - title / 2, f"slot {s}", fontsize=7, ha="center", va="center"
        )
    return _png(fig)


def _grid(panels: np.ndarray) -> np.ndarray:
    """Panels ``[rows, cols, H, W, 3]`` to one image with white gaps between them."""
    rows, cols, h, w, _ = panels.shape
    gap = max(1, h // 16)
    grid = np.ones((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), np.float32)
    for i in range(rows):
        for j in range(cols):
            grid[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = panels[
                i, j
            ]
    return np.clip(grid, 0.0, 1.0)


def segmentation_figure(
    image: np.ndarray,
    soft_masks: np.ndarray,
    binary_masks: np.ndarray,
    masks: np.ndarray,
    objects: np.ndarray,
    slot: np.ndarray,
    object_iou: np.ndarray,
    background_slot: int = -1,
    attention_label: str = "attention",
) -> bytes:
    """One image's grid: rows image / attention / Otsu mask / overlay / ground truth.

    Columns are the objects (entity order), each with its matched slot, then the
    slots matched to no object (the background's slot, if it was matched, is
    labelled so); the ground-truth row names object, slot and IoU.

    Args:
        image: [S, S, 3] in [0, 1].
        soft_masks: [K, S, S] upsampled attention of each slot.
        binary_masks: bool [K, S, S] Otsu masks.
        masks: bool [E, S, S] ground-truth entities.
        objects: bool [E] which entities are objects of this image.
        slot: int [E] matched slot of each object, -1 for none.
        object_iou: [E] IoU of each object with its slot.
        background_slot: the background's matched slot, -1 for none.
        attention_label: name of the attention row (e.g. which step it is).

    Returns:
        PNG bytes, ``CELL_INCHES · DPI`` pixels per panel.
    """
    entities = np.flatnonzero(objects)
    unmatched = sorted(set(range(len(soft_masks))) - set(slot[entities].tolist()))
    columns = [(e, slot[e]) for e in entities] + [(None, k) for k in unmatched]
    num_cols = max(len(columns), 1)
    fig = Figure(figsize=(CELL_INCHES * num_cols, CELL_INCHES * len(_ROWS)))
    # One Axes in pixel units, each panel an image placed by its extent: a grid of
    # 5 × columns Axes took about a second per figure to create.
    cell = CELL_INCHES * DPI
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_axis_off()
    ax.set_xlim(0, cell * num_cols)
    ax.set_ylim(cell * len(_ROWS), 0)
    left, top, bottom = 0.12 * cell, 0.1 * cell, 0.22 * cell  # room for labels
    side = cell - max(left + 0.03 * cell, top + bottom)

    def panel(row, col, pixels, **kwargs):
        x, y = col * cell + left, row * cell + top
        ax.imshow(pixels, extent=(x, x + side, y + side, y), interpolation="nearest", **kwargs)

    def label(row, col, text, where):
        x, y = col * cell + left, row * cell + top
        if where == "left":
            ax.text(x - 3, y + side / 2, text, fontsize=8, rotation=90, ha="right", va="center")
        elif where == "above":
            ax.text(x + side / 2, y - 2, text, fontsize=8, ha="center", va="bottom")
        else:
            ax.text(x + side / 2, y + side + 3, text, fontsize=7, ha="center", va="top")

    panel(0, 0, image)
    mean_iou = object_iou[entities].mean() if len(entities) else float("nan")
    label(0, 0, f"mean IoU {mean_iou:.2f}", "above")
    for row, name in enumerate((attention_label, *_ROWS[2:]), start=1):
        label(row, 0, name, "left")
    for col, (entity, k) in enumerate(columns):
        if k >= 0:
            panel(1, col, soft_masks[k], cmap="viridis")
            panel(2, col, binary_masks[k], cmap="gray", vmin=0, vmax=1)
            panel(3, col, np.where(binary_masks[k][..., None], image, 0.3 * image))
        if entity is None:
            what = "background" if k == background_slot else "unmatched"
            label(4, col, f"slot {k}\n{what}", "below")
            continue
        panel(4, col, masks[entity], cmap="gray", vmin=0, vmax=1)
        name = f"slot {k}" if k >= 0 else "no slot"
        label(4, col, f"object {entity}, {name}\nIoU {object_iou[entity]:.2f}", "below")
    return _png(fig)


def segmentation_figures(
    images: np.ndarray,
    masks: np.ndarray,
    details: dict,
    num_images: int = 4,
    mean: tuple = IMAGENET_MEAN,
    std: tuple = IMAGENET_STD,
    attention_label: str = "attention",
) -> list[bytes]:
    """Grids for the first ``num_images`` images of a batch.

    Args:
        images: [B, S, S, 3] normalised images of the batch.
        masks: bool [B, E, S, S] their ground-truth masks.
        details: the per-image dict that ``SegmentationMetrics.update`` (or
            ``segmentation_metrics``) returned for this batch.
        num_images: how many images (at most B).
        mean, std: the normalisation to undo.
        attention_label: name of the attention row.

    Returns:
        A list of PNG bytes, one per image.
    """
    view = {
        k: np.asarray(details[k])[:num_images]
        for k in ("soft_masks", "binary_masks", "objects", "slot", "object_iou")
    }
    pixels = np.asarray(denormalize(np.asarray(images)[:num_images], mean, std))
    background = np.asarray(details.get("background_slot", np.full(len(pixels), -1)))
    return [
        segmentation_figure(
            pixels[b],
            view["soft_masks"][b],
            view["binary_masks"][b],
            np.asarray(masks)[b],
            view["objects"][b],
            view["slot"][b],
            view["object_iou"][b],
            background_slot=int(background[b]),
            attention_label=attention_label,
        )
        for b in range(len(pixels))
    ]


def probe_figure(result: ProbeResult) -> bytes:
    """Precision–recall and ROC curves of the probe's test predictions, and its loss curve.

    Curves are drawn unweighted and with positives weighted ``result.pos_weight``
    (the ROC curve is the same under this weighting).
    """
    fig = Figure(figsize=(13.5, 4))
    pr_ax, roc_ax, loss_ax = fig.subplots(1, 3)
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.14, top=0.9, wspace=0.3)
    targets, scores = result.targets.ravel(), result.scores.ravel()
    weight = np.where(targets, result.pos_weight, 1.0)
    for name, w, key in (
        ("unweighted", None, ""),
        (f"positives ×{result.pos_weight:g}", weight, "_weighted"),
    ):
        precision, recall, _ = precision_recall_curve(targets, scores, sample_weight=w)
        pr_ax.step(
            recall, precision, where="post", label=f"{name}, AP {result.metrics['ap' + key]:.3f}"
        )
    fpr, tpr, _ = roc_curve(targets, scores)
    roc_ax.plot(fpr, tpr, label=f"AUROC {result.metrics['auroc']:.3f}")
    roc_ax.plot([0, 1], [0, 1], color="gray", linestyle=":", linewidth=1)
    pr_ax.axhline(result.metrics["base_rate"], color="gray", linestyle=":", linewidth=1)
    steps = np.arange(len(result.train_loss))
    loss_ax.plot(steps, result.train_loss, label="train")
    loss_ax.plot(steps, result.test_loss, label="test")
    for ax, title, xlabel, ylabel in (
        (pr_ax, "precision–recall", "recall", "precision"),
        (roc_ax, "ROC", "false positive rate", "true positive rate"),
        (loss_ax, "probe loss", "step", "weighted BCE"),
    ):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    return _png(fig)
