"""The commands as a user runs them: quiet start-up, one-line errors, exit statuses.

Each test starts ``python -m osc_tf.train`` (or a script) in a fresh process from a
temporary folder, so ``gin/...`` paths resolve against the package, not the checkout.
"""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd, env=None, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"} | (env or {})
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("user", [None, "false"])
def test_commands_choose_the_host_allocator_before_tensorflow_unless_the_user_did(tmp_path, user):
    code = (
        "import os\n"
        "from osc_tf.cli import common\n"
        "common.start(False)\n"
        "import tensorflow as tf\n"
        "print(os.environ['KERAS_BACKEND'], os.environ['TF_CPU_ALLOCATOR_USE_BFC'])\n"
    )
    env = {"TF_CPU_ALLOCATOR_USE_BFC": user} if user else {}
    base = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=base | env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["tensorflow", user or "true"]


def test_a_bad_gin_value_is_one_line_naming_parameter_value_and_type(tmp_path):
    done = _run(
        [
            "-m",
            "osc_tf.train",
            "--gin_file",
            "gin/tests/tiny.gin",
            "--gin_param",
            'ViT.embed_dim = "abc"',
        ],
        tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr == "error: ViT.embed_dim = 'abc': expected int\n"
    assert not os.listdir(tmp_path)  # nothing written: checked before any work


def test_verbose_shows_the_traceback(tmp_path):
    done = _run(
        [
            "-m",
            "osc_tf.train",
            "--gin_file",
            "gin/tests/tiny.gin",
            "--verbose",
            "--gin_param",
            "ViT.num_heads = 4.5",
        ],
        tmp_path,
    )
    assert done.returncode != 0
    assert "Traceback (most recent call last)" in done.stderr
    assert "ViT.num_heads = 4.5: expected int" in done.stderr


def test_an_unprepared_dataset_is_one_line_with_the_command_that_prepares_it(tmp_path):
    done = _run(
        [
            "-m",
            "osc_tf.train",
            "--gin_file",
            "gin/train.gin",
            "--workdir",
            str(tmp_path / "run"),
            "--gin_param",
            f"MultiObjectData.data_dir = {str(tmp_path / 'tfds')!r}",
        ],
        tmp_path,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: clevr_with_masks")
    assert (
        "is not prepared" in lines[0]
        and "osc-tf-prepare-data --dataset clevr_with_masks" in lines[0]
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", [["-m", "osc_tf.train"], [f"{REPO}/scripts/train.py"]])
def test_print_config_starts_without_tensorflow_noise(tmp_path, command):
    done = _run(
        [*command, "--gin_file", "gin/experiments/quickstart.gin", "--print_config"], tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no cuInit, cudart, oneDNN or absl start-up lines
    assert "ViT.embed_dim = 64  # bound" in done.stdout
    assert "train.num_steps = 6000  # bound" in done.stdout
