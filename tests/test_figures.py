"""Evaluation figures: PNG bytes whose layout follows the matching."""

import io

import matplotlib
import matplotlib.image
import numpy as np

from osc_tf.evaluation import figures
from osc_tf.evaluation.segmentation import segmentation_metrics
from osc_tf.evaluation.vqa import linear_probe

CELL = round(figures.CELL_INCHES * figures.DPI)  # pixels per panel


def _decode(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def test_attention_figure_has_a_row_per_image_and_leaves_the_backend_alone():
    backend = matplotlib.get_backend()
    rng = np.random.default_rng(0)
    images = rng.random((3, 16, 16, 3))
    attention = rng.random((3, 4, 4))  # K=4 slots over a 2x2 patch grid
    png = figures.attention_figure(images, attention)
    height, width = _decode(png).shape[:2]
    assert (height, width) == (round(1.3 * 3 * figures.DPI), round(1.3 * 5 * figures.DPI))
    assert matplotlib.get_backend() == backend


def test_segmentation_grid_has_a_column_per_object_and_unmatched_slot():
    # 4×4 crop, entities: 0 background, 1 top-left, 2 bottom-right, 3 top-right.
    entity = np.zeros((2, 4, 4), int)
    entity[:, :2, :2], entity[:, 2:, 2:], entity[:, :2, 2:] = 1, 2, 3
    masks = np.eye(4, dtype=bool)[entity].transpose(0, 3, 1, 2)  # [2, 4, 4, 4]
    visibility = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
    slots = np.where(entity == 3, 0, entity)  # 3 slots: background and entity 3 share slot 0
    attention = np.eye(3, dtype=np.float32)[slots].transpose(0, 3, 1, 2).reshape(2, 3, 16)
    details = segmentation_metrics(attention, masks, visibility)
    images = np.random.default_rng(1).normal(size=(2, 4, 4, 3))
    pngs = figures.segmentation_figures(images, masks, details, num_images=2)
    # Image 0: objects 1 and 2 (slots 1 and 2), slot 0 unmatched: 3 columns.
    # Image 1: objects 1, 2 and 3 (slot 0 goes to object 3): 3 columns, no unmatched slot.
    # With two slots only, image 1 has an object without a slot and no unmatched slot.
    few = segmentation_metrics(attention[:, 1:], masks, visibility)
    pngs += figures.segmentation_figures(images, masks, few, num_images=2)
    shapes = [_decode(png).shape[:2] for png in pngs]
    assert shapes == [(5 * CELL, 3 * CELL)] * 2 + [(5 * CELL, 2 * CELL), (5 * CELL, 3 * CELL)]
    np.testing.assert_array_equal(np.asarray(few["slot"])[1], [-1, 0, 1, -1])


def test_probe_figure_is_a_png_of_three_panels():
    rng = np.random.default_rng(2)
    features, answers = rng.normal(size=(80, 4)), rng.random((80, 6)) < 0.3
    png = figures.probe_figure(linear_probe(features, answers, num_steps=5))
    assert _decode(png).shape[:2] == (4 * figures.DPI, round(13.5 * figures.DPI))
