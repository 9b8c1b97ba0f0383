"""Evaluating a model on a test split: object discovery, VQA probe, figures.

``evaluate`` runs one model over the split and returns its numbers (and writes
figures); ``evaluate_run`` puts a trained model beside the same model at
initialisation (the floor every number is read against) and writes
``metrics.json``, TensorBoard scalars and images, and PNG figures to the workdir.
Training calls ``evaluate_run`` every ``train.test_interval`` steps and at the end;
``scripts/evaluate.py`` calls it on a workdir.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable

import gin
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from osc_tf.evaluation import figures
from osc_tf.evaluation.segmentation import SegmentationMetrics
from osc_tf.evaluation.vqa import linear_probe

METRICS_FILE = "metrics.json"
INIT_METRICS_FILE = "metrics_init.json"


def _foreground_first(masks: tf.Tensor, visibility: tf.Tensor, num_background: int):
    """Merges the leading background entities into entity 0 (objects_room has 4)."""
    if num_background <= 1:
        return masks, visibility
    background = tf.reduce_any(masks[:, :num_background], axis=1, keepdims=True)
    masks = tf.concat([background, masks[:, num_background:]], axis=1)  # [B, E', S, S]
    visible = tf.reduce_any(visibility[:, :num_background], axis=1, keepdims=True)
    return masks, tf.concat([visible, visibility[:, num_background:]], axis=1)


def evaluate(
    model,
    data,
    split: str = "test",
    max_samples: int | None = None,
    batch_size: int = 32,
    num_figures: int = 4,
    probe: Callable = linear_probe,
    progress: bool = True,
) -> tuple[dict, dict]:
    """One model over ``split``: segmentation metrics, VQA probes and figures.

    Returns:
        ``(metrics, pngs)``: plain floats (``segmentation/<name>``,
        ``vqa_slots/<name>`` and ``vqa_global/<name>``, ``num_samples``) and
        figure name → PNG bytes.
    """
    seg = SegmentationMetrics() if model.has_objects else None
    dataset = data.test(batch_size, split=split)
    if max_samples is not None:
        dataset = dataset.unbatch().take(max_samples).batch(batch_size)
    total = data.num_examples_in(split) if max_samples is None else max_samples
    slots, global_features, targets, pngs, count = [], [], [], {}, 0
    bar = tqdm(dataset, total=math.ceil(total / batch_size), desc="evaluate", disable=not progress)
    for batch in bar:
        outputs = model(batch["image"], training=False)
        count += int(batch["image"].shape[0])
        global_features.append(outputs["global_features"].numpy())
        if "vqa" in batch:
            targets.append(batch["vqa"].numpy())
        if seg is None:
            continue
        slots.append(outputs["slots"].numpy())
        masks, visibility = _foreground_first(
            batch["masks"], batch["visibility"], data.num_background
        )
        details = seg.update(outputs["attention"], masks, visibility)
        if not pngs and num_figures:
            grids = figures.segmentation_figures(batch["image"], masks, details, num_figures)
            pngs = {f"segmentation_{i}": png for i, png in enumerate(grids)}
    metrics = {"num_samples": float(count)}
    if seg is not None:
        metrics |= {f"segmentation/{k}": v for k, v in seg.result().items()}
    if targets and count >= 4:
        answers = np.concatenate(targets)
        probes = {"vqa_global": np.concatenate(global_features)}
        if slots:
            probes["vqa_slots"] = np.concatenate(slots)
        for name, features in probes.items():
            result = probe(features, answers)
            metrics |= {f"{name}/{k}": v for k, v in result.metrics.items()}
            pngs[name] = figures.probe_figure(result)
    return metrics, pngs


def _save_pngs(pngs: dict, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, png in pngs.items():
        with open(os.path.join(folder, f"{name}.png"), "wb") as f:
            f.write(png)


def _write_json(path: str, payload: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def evaluate_run(
    model,
    data,
    workdir: str,
    step: int,
    init_model_fn: Callable | None = None,
    split: str = "test",
    max_samples: int | None = None,
    batch_size: int = 32,
    checkpoint: str | None = None,
    progress: bool = True,
) -> dict:
    """Evaluates ``model`` (and, once per workdir and split, the model at init).

    Writes ``metrics.json`` (``trained``, ``init``, ``step``, ``split``,
    ``num_samples``, ``checkpoint``), PNG figures in ``figures/step_<step>/``
    (and ``figures/init/``) and TensorBoard scalars/images under
    ``tensorboard/test``. Returns the ``metrics.json`` payload.
    """
    probe = gin.get_configurable("linear_probe")
    options = dict(split=split, max_samples=max_samples, batch_size=batch_size, probe=probe)
    trained, pngs = evaluate(model, data, progress=progress, **options)
    init_path = os.path.join(workdir, INIT_METRICS_FILE)
    init, key = None, {"split": split, "max_samples": max_samples}
    if os.path.exists(init_path):
        with open(init_path) as f:
            cached = json.load(f)
        if cached.get("key") == key:
            init = cached["metrics"]
    if init is None and init_model_fn is not None:
        init, init_pngs = evaluate(init_model_fn(), data, progress=progress, **options)
        _write_json(init_path, {"key": key, "metrics": init})
        _save_pngs(init_pngs, os.path.join(workdir, "figures", "init"))
    _save_pngs(pngs, os.path.join(workdir, "figures", f"step_{step}"))
    payload = {
        "step": step,
        "split": split,
        "num_samples": trained["num_samples"],
        "checkpoint": checkpoint,
        "trained": trained,
        "init": init,
    }
    _write_json(os.path.join(workdir, METRICS_FILE), payload)
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "test"))
    with writer.as_default(step=step):
        for name, value in trained.items():
            tf.summary.scalar(name, value)
        for name, png in pngs.items():
            tf.summary.image(name, tf.image.decode_png(png)[None])
    writer.flush()
    return payload
