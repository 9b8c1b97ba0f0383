"""Evaluating a model on a test split: object discovery, VQA probe, figures.

``evaluate`` runs one model over the split and returns its numbers (and writes
figures); ``evaluate_run`` puts a trained model beside the same model at
initialisation (the floor every number is read against) and writes
``metrics.json``, TensorBoard scalars and images, and PNG figures to the workdir.
Training calls ``evaluate_run`` every ``train.test_interval`` steps and at the end;
``scripts/evaluate.py`` calls it on a workdir.

The protocol is configured with gin: ``evaluate.*`` (its name, which attention
step is scored, the headline AP), ``SegmentationMetrics.*``, ``linear_probe.*``
and the test-time options of ``MultiObjectData``. The defaults are this
project's protocol ``"osc_tf"``; gin/eval/original.gin sets the original study's.
``metrics.json`` records the settings used; init metrics are cached per protocol.
This module registers those gin names (``evaluate`` with its protocol parameters
only: the others are set by ``evaluate_run``).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from collections.abc import Callable

import gin
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from osc_tf import configurables
from osc_tf.evaluation import figures
from osc_tf.evaluation.segmentation import SegmentationMetrics
from osc_tf.evaluation.vqa import linear_probe

METRICS_FILE = "metrics.json"
INIT_METRICS_FILE = "metrics_init.json"
DEFAULT_PROTOCOL = "osc_tf"
HEADLINE_AP = ("ap", "ap_weighted")
_PROTOCOL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MAX_CACHED_INIT = 8  # init metrics kept per workdir (one per protocol and split)


def check_protocol(protocol: str, attention_step: int, headline_ap: str) -> None:
    """Raises ValueError for a bad protocol name, attention step type or headline AP."""
    if not isinstance(protocol, str) or not _PROTOCOL_NAME.fullmatch(protocol):
        raise ValueError(
            f"evaluate.protocol must be a name of letters, digits, '_', '.' or '-' "
            f"(it names folders), got {protocol!r}"
        )
    if isinstance(attention_step, bool) or not isinstance(attention_step, int):
        raise ValueError(
            f"evaluate.attention_step must be an integer index (0 the first slot-attention "
            f"iteration or decoder layer, -1 the last), got {attention_step!r}"
        )
    if headline_ap not in HEADLINE_AP:
        raise ValueError(f"evaluate.headline_ap must be one of {HEADLINE_AP}, got {headline_ap!r}")


def check_configured_protocol() -> None:
    """Raises ValueError now for a bad value in the configured protocol.

    Builds the configured ``SegmentationMetrics`` and checks the ``evaluate``
    bindings, so a run can fail before training rather than at its first
    evaluation (``MultiObjectData`` and ``linear_probe`` check theirs when called).
    """
    settings = _effective_parameters("evaluate", evaluate)
    check_protocol(settings["protocol"], settings["attention_step"], settings["headline_ap"])
    gin.get_configurable("SegmentationMetrics")()


def attention_maps(outputs: dict, attention_step: int = -1) -> tf.Tensor:
    """The slot maps to score: step ``attention_step`` of ``attention_steps`` [B, T, K, N].

    Step t is slot-attention iteration t, or decoder layer t's cross-attention
    averaged over heads; -1 (the default) is the last, ``outputs["attention"]``.

    Returns:
        [B, K, N].
    """
    steps = outputs.get("attention_steps")
    if steps is None:
        if attention_step == -1:
            return outputs["attention"]
        raise ValueError("the model's outputs have no attention_steps to pick a step from")
    num_steps = steps.shape[1]
    if num_steps is not None and not -num_steps <= attention_step < num_steps:
        raise ValueError(
            f"evaluate.attention_step = {attention_step} is out of range: the model has "
            f"{num_steps} attention steps (slot-attention iterations or decoder layers), "
            f"so it must be in [{-num_steps}, {num_steps - 1}]"
        )
    return steps[:, attention_step]


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
    num_figures: int | None = None,
    probe: Callable = linear_probe,
    progress: bool = True,
    segmentation: Callable = SegmentationMetrics,
    figures_fn: Callable = figures.segmentation_figures,
    protocol: str = DEFAULT_PROTOCOL,
    attention_step: int = -1,
    headline_ap: str = "ap",
) -> tuple[dict, dict]:
    """One model over ``split``: segmentation metrics, VQA probes and figures.

    Args:
        model: an ``ObjectCentricModel`` (or anything with its outputs and ``has_objects``).
        data: a ``MultiObjectData``; its test-time options are part of the protocol.
        split, max_samples, batch_size: the images evaluated.
        num_figures: segmentation figures of the first batch (None: ``figures_fn``'s
            own ``num_images``; 0: none).
        probe: the VQA probe, ``probe(features, answers) -> ProbeResult``.
        progress: show a progress bar.
        segmentation: builds the streaming segmentation metrics.
        figures_fn: draws the segmentation figures (of the maps that are scored).
        protocol: the protocol's name (``metrics.json``, folder names); only checked here.
        attention_step: which step of ``attention_steps`` is scored, see
            ``attention_maps`` (-1 the last; the original scored 0, the first).
        headline_ap: ``"ap"`` or ``"ap_weighted"``, the protocol's headline VQA
            number (recorded by ``evaluate_run``); only checked here.

    Returns:
        ``(metrics, pngs)``: plain floats (``segmentation/<name>`` of the attention,
        ``segmentation_decoder/<name>`` of a decoder's masks, ``vqa_slots/<name>``
        and ``vqa_global/<name>``, ``num_samples``) and figure name → PNG bytes.
    """
    check_protocol(protocol, attention_step, headline_ap)
    seg = segmentation() if model.has_objects else None
    seg_decoder = segmentation() if getattr(model, "decoder", None) is not None else None
    label = "attention" if attention_step == -1 else f"attention, step {attention_step}"
    draw = dict(attention_label=label)
    if num_figures is not None:
        draw["num_images"] = num_figures
    dataset = data.test(batch_size, split=split)
    if max_samples is not None:
        dataset = dataset.unbatch().take(max_samples).batch(batch_size)
    total = data.num_examples_in(split) if max_samples is None else max_samples
    slots, global_features, targets, pngs, count, drawn = [], [], [], {}, 0, False
    bar = tqdm(dataset, total=math.ceil(total / batch_size), desc="evaluate", disable=not progress)
    for batch in bar:
        # eager: tracing the model (twice, for the last partial batch) cost more than
        # its 32 eager calls (70.8 vs 64.7 s and 100.5 vs 78.7 s for osc-tf-evaluate)
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
        details = seg.update(attention_maps(outputs, attention_step), masks, visibility)
        decoded = None
        if seg_decoder is not None:
            decoded = seg_decoder.update(outputs["masks"], masks, visibility)
        if not drawn and num_figures != 0:
            grids = figures_fn(batch["image"], masks, details, **draw)
            pngs = {f"segmentation_{i}": png for i, png in enumerate(grids)}
            if decoded is not None:
                grids = figures_fn(
                    batch["image"], masks, decoded, **(draw | {"attention_label": "decoder masks"})
                )
                pngs |= {f"segmentation_decoder_{i}": png for i, png in enumerate(grids)}
            drawn = True
    metrics = {"num_samples": float(count)}
    if seg is not None:
        metrics |= {f"segmentation/{k}": v for k, v in seg.result().items()}
    if seg_decoder is not None:
        metrics |= {f"segmentation_decoder/{k}": v for k, v in seg_decoder.result().items()}
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


def _effective_parameters(name: str, fn: Callable) -> dict:
    """``fn``'s parameters with defaults, overridden by the gin bindings of ``name``."""
    values = {
        k: p.default
        for k, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return values | gin.get_bindings(name)


def _plain(value):
    """A JSON-safe copy (for the record and for comparing it with a cached one)."""
    return json.loads(json.dumps(value, default=repr))


def protocol_record(model, data, segmentation: SegmentationMetrics | None = None) -> dict:
    """The configured evaluation protocol, as ``metrics.json`` records it.

    Reads the gin bindings of ``evaluate`` (name, attention step, headline AP),
    ``SegmentationMetrics`` (or the given instance) and ``linear_probe``, and the
    test-time options of ``data``. ``headline_ap`` is the key of the headline VQA
    number in the metrics: the slots' probe for models with slots, else the
    global features' (None without VQA answers).
    """
    settings = _effective_parameters("evaluate", evaluate)
    name, step, headline = (settings[k] for k in ("protocol", "attention_step", "headline_ap"))
    check_protocol(name, step, headline)
    if segmentation is None:
        segmentation = gin.get_configurable("SegmentationMetrics")()
    probe = _effective_parameters("linear_probe", linear_probe)
    features = "vqa_slots" if model.has_objects else "vqa_global"
    return _plain(
        {
            "name": name,
            "headline_ap": f"{features}/{headline}" if data.has_vqa else None,
            "attention_step": step if model.has_objects else None,
            "segmentation": segmentation.settings() if model.has_objects else None,
            "test_data": {
                "mask_resize": getattr(data, "test_mask_resize", "nearest"),
                "visibility": getattr(data, "test_visibility", "crop"),
            },
            "probe": probe,
        }
    )


def _read_init_cache(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        cached = json.load(f)
    if "entries" in cached:
        return cached["entries"]
    return [cached] if "key" in cached else []  # the format of one entry per file


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
    """Evaluates ``model`` (and, once per workdir, split and protocol, the model at init).

    Writes ``metrics.json`` (``trained``, ``init``, ``step``, ``split``,
    ``num_samples``, ``checkpoint``, ``protocol``: see ``protocol_record``), PNG
    figures in ``figures/step_<step>/`` (and ``figures/init/``) and TensorBoard
    scalars/images under ``tensorboard/test``; a protocol other than ``"osc_tf"``
    writes its figures under ``figures/<protocol>/`` and its TensorBoard events
    under ``tensorboard/test_<protocol>``. Returns the ``metrics.json`` payload.
    """
    seg = gin.get_configurable("SegmentationMetrics")
    record = protocol_record(model, data, seg() if model.has_objects else None)
    name = record["name"]
    options = dict(
        split=split,
        max_samples=max_samples,
        batch_size=batch_size,
        probe=gin.get_configurable("linear_probe"),
        segmentation=seg,
        figures_fn=gin.get_configurable("segmentation_figures"),
        progress=progress,
    )
    run_evaluation = gin.get_configurable("evaluate")
    trained, pngs = run_evaluation(model, data, **options)
    figure_dir = os.path.join(workdir, "figures")
    if name != DEFAULT_PROTOCOL:
        figure_dir = os.path.join(figure_dir, name)
    init_path = os.path.join(workdir, INIT_METRICS_FILE)
    key = {"split": split, "max_samples": max_samples, "protocol": record}
    entries = _read_init_cache(init_path)
    init = next((e["metrics"] for e in entries if e.get("key") == key), None)
    if init is None and init_model_fn is not None:
        init, init_pngs = run_evaluation(init_model_fn(), data, **options)
        entries = [e for e in entries if e.get("key") != key][-(_MAX_CACHED_INIT - 1) :]
        _write_json(init_path, {"entries": entries + [{"key": key, "metrics": init}]})
        _save_pngs(init_pngs, os.path.join(figure_dir, "init"))
    _save_pngs(pngs, os.path.join(figure_dir, f"step_{step}"))
    payload = {
        "step": step,
        "split": split,
        "num_samples": trained["num_samples"],
        "checkpoint": checkpoint,
        "protocol": record,
        "trained": trained,
        "init": init,
    }
    _write_json(os.path.join(workdir, METRICS_FILE), payload)
    run = "test" if name == DEFAULT_PROTOCOL else f"test_{name}"
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", run))
    with writer.as_default(step=step):
        for metric, value in trained.items():
            tf.summary.scalar(metric, value)
        for figure, png in pngs.items():
            tf.summary.image(figure, tf.image.decode_png(png)[None])
    writer.flush()
    return payload


for _obj in (linear_probe, SegmentationMetrics, figures.segmentation_figures):
    configurables.register(_obj)
# ``evaluate.*`` names the protocol, picks the scored attention step and the headline
# AP; its other parameters are set by the caller (``evaluate_run``), so binding them
# would have no effect and is refused.
configurables.register(
    evaluate, allowlist=["num_figures", "protocol", "attention_step", "headline_ap"]
)
