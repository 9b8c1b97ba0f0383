"""Evaluation protocols: the scored attention step, gin/eval/*.gin, the protocol in
metrics.json, the init-metrics cache per protocol and scripts/evaluate.py --gin_file."""

import json
import os
import shutil
import types

import gin
import numpy as np
import pytest
import tensorflow as tf

from osc_tf import config
from osc_tf.evaluation import run
from scripts import evaluate as evaluate_script

ORIGINAL = {
    "name": "original",
    "headline_ap": "vqa_slots/ap_weighted",
    "attention_step": 0,
    "segmentation": {
        "num_bins": 256,
        "match_background": True,
        "upsampling": "nearest",
        "objects": "visible",
        "soft_dice_normalization": "none",
    },
    "test_data": {"mask_resize": "bilinear_nonzero", "visibility": "image"},
    "probe": {
        "num_steps": 10000,
        "learning_rate": 1e-3,
        "weight_decay": 1e-2,
        "pos_weight": 14.0,
        "train_fraction": 0.75,
        "seed": 0,
    },
}


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


# ---------------------------------------------------------------- the scored step


def test_attention_maps_pick_a_step():
    steps = tf.reshape(tf.range(2 * 3 * 2 * 4, dtype=tf.float32), [2, 3, 2, 4])  # [B,T,K,N]
    outputs = {"attention_steps": steps, "attention": steps[:, -1]}
    np.testing.assert_array_equal(run.attention_maps(outputs, 0), steps[:, 0])
    np.testing.assert_array_equal(run.attention_maps(outputs, 1), steps[:, 1])
    np.testing.assert_array_equal(run.attention_maps(outputs), outputs["attention"])
    np.testing.assert_array_equal(run.attention_maps(outputs, -3), steps[:, 0])
    for bad in (3, -4):
        with pytest.raises(ValueError, match=r"3 attention steps .* \[-3, 2\]"):
            run.attention_maps(outputs, bad)


class _Model:
    """Attention [n, T=2, K=3, N=4] looked up by the image index in pixel (0, 0, 0)."""

    has_objects = True

    def __init__(self, steps):
        self.steps = tf.constant(steps, tf.float32)

    def __call__(self, images, training=False):
        steps = tf.gather(self.steps, tf.cast(images[:, 0, 0, 0], tf.int32))
        batch = tf.shape(images)[0]
        return {
            "attention_steps": steps,
            "attention": steps[:, -1],
            "slots": tf.zeros([batch, 3, 4]),
            "global_features": tf.zeros([batch, 4]),
        }


class _Data:
    num_background = 1
    has_vqa = False

    def __init__(self, examples):
        self.examples = examples

    def test(self, batch_size, split="test"):
        return tf.data.Dataset.from_tensor_slices(self.examples).batch(batch_size)

    def num_examples_in(self, split):
        return len(self.examples["image"])


def _scene():
    """Two 4×4 images of 2×2 patches; entity e covers the patches labelled e.

    Returns the data and attention steps [n, T=2, K=3, N=4]: the objects exactly,
    then uniform attention (no Otsu foreground: IoU 0).
    """
    labels = np.array([[[0, 1], [2, 0]], [[1, 1], [0, 2]]])  # [n, 2, 2]
    exact = np.eye(3, dtype=np.float32)[labels].reshape(2, 4, 3).transpose(0, 2, 1)  # [n,K,N]
    uniform = np.full_like(exact, 1 / 3)
    masks = np.eye(3, dtype=bool)[labels.repeat(2, 1).repeat(2, 2)].transpose(0, 3, 1, 2)
    images = np.zeros((2, 4, 4, 3), np.float32)
    images[:, 0, 0, 0] = [0, 1]
    data = _Data({"image": images, "masks": masks, "visibility": masks.any(axis=(2, 3))})
    return data, np.stack([exact, uniform], axis=1)


def test_evaluate_scores_the_configured_attention_step():
    data, steps = _scene()
    model = _Model(steps)
    first, pngs = run.evaluate(model, data, num_figures=1, attention_step=0, progress=False)
    assert first["segmentation/iou"] == first["segmentation/mbo"] == 1.0
    assert list(pngs) == ["segmentation_0"]
    last, _ = run.evaluate(model, data, num_figures=0, progress=False)
    assert last["segmentation/iou"] == 0.0
    with pytest.raises(ValueError, match="out of range"):
        run.evaluate(model, data, num_figures=0, attention_step=2, progress=False)


def test_metrics_json_records_the_protocol_and_init_is_cached_per_protocol(tmp_path):
    data, steps = _scene()
    trained = _Model(steps)  # exact at step 0
    inits = []

    def init_model():
        inits.append(_Model(steps[:, ::-1]))  # exact at the last step
        return inits[-1]

    def evaluate(*bindings):
        config.parse([], ["linear_probe.num_steps = 3", *bindings])
        return run.evaluate_run(trained, data, str(tmp_path), 7, init_model, progress=False)

    default = evaluate()
    assert default["protocol"]["name"] == "osc_tf" and default["protocol"]["attention_step"] == -1
    assert default["protocol"]["headline_ap"] is None  # no VQA answers in this data
    assert default["protocol"]["probe"]["num_steps"] == 3
    assert (default["trained"]["segmentation/iou"], default["init"]["segmentation/iou"]) == (0, 1)
    assert evaluate()["init"] == default["init"] and len(inits) == 1  # cached
    original = evaluate("evaluate.protocol = 'original'", "evaluate.attention_step = 0")
    assert len(inits) == 2  # not the other protocol's init metrics
    assert (original["trained"]["segmentation/iou"], original["init"]["segmentation/iou"]) == (1, 0)
    assert (original["protocol"]["name"], original["protocol"]["attention_step"]) == ("original", 0)
    assert _metrics(str(tmp_path))["protocol"] == original["protocol"]
    assert evaluate()["init"] == default["init"] and len(inits) == 2  # both stay cached
    figures = tmp_path / "figures"
    assert {"init", "step_7", "original"} <= set(os.listdir(figures))
    assert {"init", "step_7"} == set(os.listdir(figures / "original"))
    assert {"test", "test_original"} <= set(os.listdir(tmp_path / "tensorboard"))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"protocol": "my protocol"}, "protocol"),
        ({"protocol": ""}, "protocol"),
        ({"attention_step": "first"}, "attention_step"),
        ({"attention_step": True}, "attention_step"),
        ({"headline_ap": "auroc"}, "headline_ap"),
    ],
)
def test_bad_protocol_settings_fail_clearly(kwargs, message):
    settings = {"protocol": "osc_tf", "attention_step": -1, "headline_ap": "ap"} | kwargs
    with pytest.raises(ValueError, match=message):
        run.check_protocol(**settings)
    with pytest.raises(ValueError, match=message):  # a wrong type fails at parse time
        config.parse([], [f"evaluate.{k} = {v!r}" for k, v in kwargs.items()])
        run.check_configured_protocol()


def test_only_the_protocol_parameters_of_evaluate_are_configurable():
    with pytest.raises(config.ConfigError, match="allowlist"):
        config.parse([], ["evaluate.batch_size = 4"])  # evaluate_run passes it


# ---------------------------------------------------------------- gin/eval/*.gin


def _record(files, has_objects=True):
    config.parse(files)
    run.check_configured_protocol()
    data = gin.get_configurable("MultiObjectData")(build_synthetic=False)  # nothing read
    return run.protocol_record(types.SimpleNamespace(has_objects=has_objects), data)


def test_original_gin_resolves_on_top_of_train_gin():
    record = _record(["gin/train.gin", "gin/eval/original.gin"])
    assert record == ORIGINAL
    assert gin.query_parameter("MultiObjectData.dataset") == "clevr_with_masks"
    metrics = gin.get_configurable("SegmentationMetrics")()
    assert (metrics.upsampling, metrics.match_background) == ("nearest", True)
    global_only = _record(["gin/train.gin", "gin/eval/original.gin"], has_objects=False)
    assert global_only["headline_ap"] == "vqa_global/ap_weighted"
    assert global_only["segmentation"] is None and global_only["attention_step"] is None


def test_osc_tf_gin_spells_out_the_defaults():
    default = _record(["gin/train.gin"])
    assert default["name"] == "osc_tf" and default["headline_ap"] == "vqa_slots/ap"
    assert _record(["gin/train.gin", "gin/eval/original.gin", "gin/eval/osc_tf.gin"]) == default


# ---------------------------------------------------------------- scripts/evaluate.py


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.json")) as f:
        return json.load(f)


def test_evaluate_script_gin_file_sets_the_protocol(tiny_run, tmp_path, capsys):
    workdir = str(tmp_path / "run")
    shutil.copytree(tiny_run.workdir, workdir)
    # The original protocol; --gin_param still applies after the gin file.
    extra = ["--gin_file", "gin/eval/original.gin", "--gin_param", "linear_probe.num_steps = 5"]
    assert evaluate_script.main(["--workdir", workdir, "--max_samples", "6", *extra]) == 0
    assert "protocol 'original'" in capsys.readouterr().out
    metrics = _metrics(workdir)
    assert metrics["protocol"] == ORIGINAL | {"probe": ORIGINAL["probe"] | {"num_steps": 5}}
    assert metrics["init"] is not None
    figures = os.path.join(workdir, "figures", "original")
    assert {"segmentation_0.png", "vqa_slots.png"} <= set(os.listdir(f"{figures}/step_4"))


def test_evaluate_script_rejects_a_missing_gin_file(tiny_run, capsys):
    args = ["--workdir", tiny_run.workdir, "--gin_file", "gin/eval/nope.gin"]
    assert evaluate_script.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "gin/eval/nope.gin" in err
