"""The SavedModel export: fresh-process equality, signatures, bad inputs, num_slots;
and the evaluate / export scripts on a trained workdir."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from osc_tf import config, factories, training
from osc_tf.data.pipelines import preprocess_for_inference
from osc_tf.export import export_model
from scripts import evaluate as evaluate_script
from scripts import export as export_script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def images_uint8(shape=(3, 40, 56, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def run_client(export_dir: str, images: np.ndarray, num_slots: int, tmp_path) -> dict:
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "tests", "export_client.py"),
            export_dir,
            str(tmp_path / "images.npy"),
            str(num_slots),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=str(tmp_path),  # nothing of this repository on the path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def expected_masks(attention: np.ndarray, height: int, width: int) -> np.ndarray:
    """Attention [B,K,N] bilinearly resized onto the centre square of an HxW image."""
    b, k, n = attention.shape
    grid = int(round(np.sqrt(n)))
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    maps = tf.image.resize(
        np.transpose(attention.reshape(b, k, grid, grid), [0, 2, 3, 1]), [side, side]
    ).numpy()  # [B, side, side, K]
    full = np.zeros((b, k, height, width), np.float32)
    full[:, :, top : top + side, left : left + side] = np.transpose(maps, [0, 3, 1, 2])
    return full


def test_export_reloads_in_a_fresh_process_with_the_models_outputs(tiny_run, tmp_path):
    run = training.load(tiny_run.workdir)  # weights from the checkpoint, not the live run
    model, crop = run["model"], run["data"].crop_size
    images = images_uint8()
    outputs = {k: v.numpy() for k, v in model(preprocess_for_inference(images, crop)).items()}
    client = run_client(os.path.join(tiny_run.workdir, "export"), images, 4, tmp_path)
    assert str(client["modules"]) == ""  # the client needed no code of this project
    for key in ("global_features", "global_projection"):
        np.testing.assert_allclose(client[f"embed/{key}"], outputs[key], atol=1e-5, rtol=1e-5)
    for key in ("slots", "slot_projection"):
        np.testing.assert_allclose(client[f"objects/{key}"], outputs[key], atol=1e-5, rtol=1e-5)
    masks = client["objects/masks"]
    assert masks.shape == (3, 4, 40, 56)
    np.testing.assert_allclose(
        masks, expected_masks(outputs["attention"], 40, 56), atol=1e-5, rtol=1e-5
    )
    np.testing.assert_array_equal(client["objects/attention_masks"], masks)  # no decoder
    assert np.all(masks[..., :8] == 0) and np.all(masks[..., 48:] == 0)  # outside the square


def test_saved_model_cli_lists_both_signatures(tiny_run):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    out = subprocess.run(
        [cli, "show", "--all", "--dir", os.path.join(tiny_run.workdir, "export")],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    for name in ("signature_def['embed']", "signature_def['objects']", "serving_default"):
        assert name in out, out[-2000:]
    assert "global_projection" in out and "masks" in out and "num_slots" in out


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((40, 56, 3), np.uint8), "shape=(None, None, None, 3)"),  # rank 3
        (np.zeros((1, 40, 56, 4), np.uint8), "shape=(None, None, None, 3)"),  # 4 channels
        (np.zeros((1, 40, 56, 3), np.float32), "dtype=tf.uint8"),  # not uint8
    ],
)
def test_bad_inputs_get_a_clear_error(tiny_run, images, message):
    loaded = tf.saved_model.load(os.path.join(tiny_run.workdir, "export"))
    with pytest.raises((TypeError, ValueError)) as error:
        loaded.embed(tf.constant(images))
    assert message in str(error.value)


def test_learned_queries_need_the_trained_number_of_slots(tiny_run):
    loaded = tf.saved_model.load(os.path.join(tiny_run.workdir, "export"))
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_slots must be 4"):
        loaded.objects(tf.constant(images_uint8()), num_slots=tf.constant(7))


def test_gaussian_queries_export_any_number_of_slots_deterministically(tiny_data, tmp_path):
    config.parse(
        ["gin/tests/tiny.gin", "gin/model/queries/gaussian.gin"],
        [f"MultiObjectData.data_dir = {tiny_data.data_dir!r}"],
    )
    model = factories.build_model(0, 32)
    path = export_model(model, str(tmp_path), crop_size=32)
    loaded = tf.saved_model.load(path)
    images = tf.constant(images_uint8((2, 32, 48, 3)))
    for k in (3, 6):
        first = loaded.objects(images, num_slots=tf.constant(k))
        again = loaded.objects(images, num_slots=tf.constant(k))
        assert first["slots"].shape == (2, k, 32) and first["masks"].shape == (2, k, 32, 48)
        for key in first:
            np.testing.assert_array_equal(first[key], again[key])
        expected = model(preprocess_for_inference(images, 32), num_slots=k)["slots"]
        np.testing.assert_allclose(first["slots"], expected, atol=1e-5, rtol=1e-5)


def test_decoder_run_scores_draws_and_exports_its_masks(tiny_data, tmp_path):
    """A tiny run with the decoder: decoder masks evaluated, drawn and served by `objects`."""
    from tests.conftest import train_tiny

    workdir = tmp_path / "run"
    decoder = ["ObjectCentricModel.decoder = @MaskDecoder()", "MaskDecoder.hidden = 16"]
    train_tiny(tiny_data.data_dir, workdir, *decoder, "include 'gin/losses/reconstruction.gin'")
    with open(workdir / "metrics.json") as f:
        metrics = json.load(f)
    for when in ("trained", "init"):
        for name in ("fg_ari", "mbo", "iou", "dice"):
            assert np.isfinite(metrics[when][f"segmentation_decoder/{name}"])
            assert np.isfinite(metrics[when][f"segmentation/{name}"])
    figures = os.listdir(workdir / "figures" / "step_4")
    assert "segmentation_decoder_0.png" in figures and "segmentation_0.png" in figures

    run = training.load(str(workdir))
    images = images_uint8()
    outputs = run["model"](preprocess_for_inference(images, 32))
    client = run_client(str(workdir / "export"), images, 4, tmp_path)
    masks, attention_masks = client["objects/masks"], client["objects/attention_masks"]
    assert masks.shape == attention_masks.shape == (3, 4, 40, 56)
    np.testing.assert_allclose(
        attention_masks, expected_masks(outputs["attention"].numpy(), 40, 56), atol=1e-5
    )
    square = tf.image.resize(np.transpose(outputs["masks"], [0, 2, 3, 1]), [40, 40]).numpy()
    np.testing.assert_allclose(masks[..., 8:48], np.transpose(square, [0, 3, 1, 2]), atol=1e-5)
    np.testing.assert_allclose(masks[..., 8:48].sum(axis=1), 1.0, rtol=1e-5)
    assert np.all(masks[..., :8] == 0) and np.all(masks[..., 48:] == 0)


def test_export_script_writes_a_loadable_savedmodel(tiny_run, tmp_path, capsys):
    out = tmp_path / "exported"
    assert export_script.main(["--workdir", tiny_run.workdir, "--out", str(out)]) == 0
    assert "exported step 4" in capsys.readouterr().out
    loaded = tf.saved_model.load(str(out))
    result = loaded.embed(tf.constant(images_uint8()))
    assert result["global_features"].shape == (3, 32)


def test_evaluate_script_writes_every_metric(tiny_run, capsys):
    assert evaluate_script.main(["--workdir", tiny_run.workdir, "--max_samples", "6"]) == 0
    metrics = json.load(open(os.path.join(tiny_run.workdir, "metrics.json")))
    assert metrics["step"] == 4 and metrics["split"] == "test" and metrics["num_samples"] == 6
    assert metrics["checkpoint"].endswith("ckpt-4")
    segmentation = ("ari", "dice", "fg_ari", "iou", "mbo", "soft_dice", "num_objects")
    probe = ("ap", "ap_weighted", "auroc", "auroc_weighted", "loss", "base_rate")
    for part in ("trained", "init"):
        keys = set(metrics[part])
        assert {f"segmentation/{k}" for k in segmentation} <= keys, part
        for name in ("vqa_slots", "vqa_global"):
            assert {f"{name}/{k}" for k in probe} <= keys, (part, name)
        assert all(np.isfinite(v) for v in metrics[part].values()), part
    figures = os.listdir(os.path.join(tiny_run.workdir, "figures", "step_4"))
    assert {"segmentation_0.png", "vqa_slots.png", "vqa_global.png"} <= set(figures)
