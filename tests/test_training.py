"""The training loop end to end on gin/tests/tiny.gin: workdir contents, resume,
reproducibility, pre-emption, MirroredStrategy equality, and early gin errors."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from osc_tf import config, training
from osc_tf.losses import Objective
from scripts import train as train_script
from tests.conftest import train_tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scalars(workdir: str, run: str) -> dict[str, dict[int, float]]:
    """TensorBoard scalars of ``workdir/tensorboard/<run>``: tag -> {step: value}."""
    out = {}
    for path in glob.glob(os.path.join(workdir, "tensorboard", run, "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.ndim == 0 and array.dtype.kind == "f":
                    out.setdefault(value.tag, {})[event.step] = float(array)
    return out


def tags(workdir: str, run: str) -> set[str]:
    found = set()
    for path in glob.glob(os.path.join(workdir, "tensorboard", run, "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            found |= {value.tag for value in event.summary.value}
    return found


def checkpoint_weights(workdir: str) -> dict[str, np.ndarray]:
    """Every model weight of the newest checkpoint, by position in ``model.weights``."""
    latest = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
    reader = tf.train.load_checkpoint(latest)
    return {
        name: reader.get_tensor(name)
        for name, _ in tf.train.list_variables(latest)
        if name.startswith("model_weights/")
    }


def test_tiny_run_writes_a_complete_workdir(tiny_run):
    workdir = tiny_run.workdir
    assert tiny_run.result["status"] == "finished" and tiny_run.result["step"] == 4
    assert np.isfinite(tiny_run.result["loss"])
    # Checkpoints every 2 steps and at the end.
    assert tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints")).endswith("ckpt-4")
    assert os.path.exists(os.path.join(workdir, "checkpoints", "ckpt-2.index"))
    # The operative config re-parses and holds the tiny model's values and defaults.
    with open(os.path.join(workdir, "operative_config.gin")) as f:
        text = f.read()
    assert "ViT.embed_dim = 32" in text and "LearnedQueries.num_slots = 4" in text
    assert "train.batch_size = 4" in text
    config.read_workdir(workdir)
    assert gin.query_parameter("ViT.embed_dim") == 32
    info = json.load(open(os.path.join(workdir, "run_info.json")))
    assert info["seed"] == 0 and info["starts"][0]["git_revision"]
    # TensorBoard: every health metric per step, validation losses, figures, config text.
    train = scalars(workdir, "train")
    for tag in ("loss", "loss_global_ctr", "loss_object_ctr_img", "learning_rate"):
        assert sorted(train[tag]) == [1, 2, 3, 4], tag
    for tag in ("grad_norm", "param_norm", "images_per_second"):
        assert all(v > 0 for v in train[tag].values()), tag
    np.testing.assert_allclose(
        train["loss"][4], train["loss_global_ctr"][4] + train["loss_object_ctr_img"][4], rtol=1e-6
    )
    assert sorted(scalars(workdir, "validation")["loss"]) == [2, 4]
    assert {"slot_attention"} <= tags(workdir, "validation")
    assert "operative_config" in tags(workdir, "train")
    # Evaluation at the end, beside the model at initialisation, and the export.
    metrics = json.load(open(os.path.join(workdir, "metrics.json")))
    assert metrics["step"] == 4 and metrics["split"] == "test" and metrics["num_samples"] == 6
    assert set(metrics["trained"]) == set(metrics["init"])
    assert metrics["trained"]["segmentation/fg_ari"] != metrics["init"]["segmentation/fg_ari"]
    assert os.path.exists(os.path.join(workdir, "export", "saved_model.pb"))


def test_resume_continues_identically_and_the_seed_reproduces_losses(
    tiny_data, tmp_path, monkeypatch
):
    """20 steps in one go vs 10, stop, resume to 20: same losses at every step, same weights.

    The uninterrupted run logs every 5th step: the host reads step outputs (the
    transfer that waits for the step) on those 4 steps and no other.
    """
    quick = [
        "train.num_steps = 20",
        "train.checkpoint_interval = 10",
        "train.val_interval = 0",
        "train.viz_interval = 0",
        "train.evaluate = False",
        "train.export = False",
    ]
    whole, split = tmp_path / "whole", tmp_path / "split"
    fetched = []
    fetch = training.fetch
    monkeypatch.setattr(training, "fetch", lambda outputs: fetched.append(1) or fetch(outputs))
    train_tiny(tiny_data.data_dir, whole, *quick, "train.log_interval = 5")
    assert len(fetched) == 4
    monkeypatch.undo()
    first = train_tiny(tiny_data.data_dir, split, *quick, "train.max_steps_per_run = 10")
    assert first["step"] == 10 and first["status"] == "paused"
    second = train_tiny(tiny_data.data_dir, split, *quick)
    assert second["step"] == 20 and second["status"] == "finished"
    starts = json.load(open(split / "run_info.json"))["starts"]
    assert [s["start_step"] for s in starts] == [0, 10]
    losses_whole = scalars(str(whole), "train")["loss"]
    losses_split = scalars(str(split), "train")["loss"]
    assert sorted(losses_whole) == [5, 10, 15, 20] and sorted(losses_split) == list(range(1, 21))
    # exact: same seed, same data, same arithmetic
    assert {k: losses_split[k] for k in losses_whole} == losses_whole
    weights_whole, weights_split = checkpoint_weights(str(whole)), checkpoint_weights(str(split))
    assert weights_whole.keys() == weights_split.keys() and len(weights_whole) > 10
    for name, value in weights_whole.items():
        np.testing.assert_array_equal(weights_split[name], value, err_msg=name)


def test_init_from_starts_a_new_run_from_other_weights(tiny_run, tiny_data, tmp_path):
    """Model weights come from init_from (a workdir); step and optimizer start afresh."""
    finetune = tmp_path / "finetune"
    result = train_tiny(
        tiny_data.data_dir,
        finetune,
        f"train.init_from = {tiny_run.workdir!r}",
        "train.num_steps = 1",
        "WarmupDecay.peak_lr = 0.0",  # a step that changes nothing: weights stay the source's
        "WarmupDecay.end_lr = 0.0",
        "train.evaluate = False",
        "train.export = False",
        "train.val_interval = 0",
        "train.viz_interval = 0",
    )
    assert result["step"] == 1  # a new run: step 0 → 1, not a resume at step 4
    source, started = checkpoint_weights(tiny_run.workdir), checkpoint_weights(str(finetune))
    assert len(source) == 56  # every weight of the tiny model, ViT blocks included
    for name, value in source.items():
        np.testing.assert_array_equal(started[name], value, err_msg=name)


def test_sigterm_saves_a_checkpoint_and_exits_as_resumable(tiny_data, tmp_path):
    workdir = tmp_path / "preempted"
    command = [
        sys.executable,
        "scripts/train.py",
        "--gin_file",
        "gin/tests/tiny.gin",
        "--gin_param",
        f"MultiObjectData.data_dir = {tiny_data.data_dir!r}",
        "--gin_param",
        "train.num_steps = 100000",
        "--gin_param",
        "train.checkpoint_interval = 100000",
        "--workdir",
        str(workdir),
    ]
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("step 3/100000 train"):
            proc.send_signal(signal.SIGTERM)
            break
        assert time.monotonic() < deadline, "".join(lines[-20:])
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, "".join(lines[-20:]) + out  # EX_TEMPFAIL: resumable
    latest = tf.train.latest_checkpoint(str(workdir / "checkpoints"))
    assert latest is not None and int(latest.rsplit("-", 1)[1]) >= 3
    assert "checkpoint saved at step" in out


def test_mirrored_strategy_matches_one_device(tiny_data):
    """Two logical CPU devices: same losses and updated weights as one device; the
    replicas' random draws in training differ."""
    script = os.path.join(REPO, "tests", "mirrored_training_check.py")
    env = {**os.environ, "PYTHONPATH": REPO}
    proc = subprocess.run(
        [sys.executable, script, tiny_data.data_dir],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replicas sample independently" in proc.stdout
    assert "mirrored training ran" in proc.stdout


def test_fit_on_one_device_logs_the_losses(tiny_data):
    config.parse(["gin/tests/tiny.gin"], [f"MultiObjectData.data_dir = {tiny_data.data_dir!r}"])
    from osc_tf.factories import build_model

    model = build_model(0, 32)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), objective=Objective())
    batch = next(iter(tiny_data.validation(4)))
    expected = float(model.test_step(batch)["loss"])
    history = model.fit(tiny_data.validation(4).take(1), epochs=1, verbose=0).history
    assert history["loss"][0] == pytest.approx(expected, rel=1e-5)  # loss before the update
    assert history["loss_global_ctr"][0] > 0 and history["grad_norm"][0] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--gin_param", "NotAThing.x = 1"], "NotAThing"),
        (["--gin_param", "ViT.not_a_parameter = 1"], "not_a_parameter"),
        (["--gin_file", "gin/no/such/file.gin"], "gin/no/such/file.gin"),
        (["--gin_param", "train.batch_size = "], "train.batch_size"),
    ],
)
def test_bad_gin_input_fails_before_any_work(argv, message, capsys, tmp_path):
    code = train_script.main(
        ["--gin_file", "gin/tests/tiny.gin", "--workdir", str(tmp_path / "w")] + argv
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "w").exists()


def test_bad_gin_value_names_the_parameter(tmp_path):
    with pytest.raises(ValueError, match="train.batch_size"):
        train_tiny(str(tmp_path / "tfds"), tmp_path / "w", "train.batch_size = 'four'")
    assert not (tmp_path / "w").exists() and not (tmp_path / "tfds").exists()


def test_print_config_lists_every_parameter_with_its_default(capsys):
    assert train_script.main(["--gin_file", "gin/tests/tiny.gin", "--print_config"]) == 0
    out = capsys.readouterr().out
    assert "ViT.embed_dim = 32  # bound" in out
    assert "ViT.num_heads = 4  # bound" in out
    assert "SlotAttention.eps = 1e-08  # default" in out
    assert "train.workdir = 'runs/tiny'  # bound" in out
    assert "WarmupDecay.total_steps = %REQUIRED  # required" in out


@pytest.mark.parametrize(
    "precision, jit",
    [("mixed_float16", False), pytest.param("mixed_bfloat16", True, marks=pytest.mark.slow)],
)
def test_mixed_precision_and_xla_train_with_finite_losses(tiny_data, tmp_path, precision, jit):
    try:
        result = train_tiny(
            tiny_data.data_dir,
            tmp_path,
            f"train.precision = {precision!r}",
            f"train.jit_compile = {jit}",
            "train.num_steps = 3",
            "train.checkpoint_interval = 3",
            "train.evaluate = False",
            "train.export = False",
            "train.val_interval = 0",
            "train.viz_interval = 0",
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result["status"] == "finished"
    losses = scalars(str(tmp_path), "train")["loss"]
    assert sorted(losses) == [1, 2, 3] and all(np.isfinite(v) for v in losses.values())
    # float16 loss scaling skips the steps whose scaled gradients overflow; the
    # weights it keeps are finite either way.
    assert all(np.isfinite(w).all() for w in checkpoint_weights(str(tmp_path)).values())


def test_validation_runs_on_its_steps_between_logging_steps(tiny_data, tmp_path):
    """val_interval 3 with log_interval 5: validation at steps 3 and 6, logs at 5 and 6."""
    workdir = tmp_path / "w"
    train_tiny(
        tiny_data.data_dir,
        workdir,
        "train.num_steps = 6",
        "train.log_interval = 5",
        "train.val_interval = 3",
        "train.checkpoint_interval = 100",
        "train.viz_interval = 0",
        "train.evaluate = False",
        "train.export = False",
    )
    assert sorted(scalars(str(workdir), "validation")["loss"]) == [3, 6]
    assert sorted(scalars(str(workdir), "train")["loss"]) == [5, 6]
