"""The package as a user installs it: a wheel in a fresh virtual environment.

Builds the wheel from a copy of this checkout, installs it (dependencies from
pyproject.toml, held to requirements.txt's pinned versions) into a new venv, and
runs ``--print_config`` of the quickstart from a temporary folder: the gin files
travel with the package and the commands work without the checkout. Slow: it
downloads the dependencies unless pip's cache has them (minutes).
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(command, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, env=env, **kwargs
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_the_wheel_installs_and_its_commands_run_from_any_folder(tmp_path):
    source = tmp_path / "source"  # building writes build/ and *.egg-info: not into the checkout
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", "runs", "build", "dist", "*.egg-info", "__pycache__"),
    )
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "dist", source],
        timeout=900,
    )
    (wheel,) = (tmp_path / "dist").glob("osc_tf-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"osc_tf/gin/train.gin", "osc_tf/gin/experiments/quickstart.gin"} <= set(names)
    assert not any(n.startswith(("tests/", "scripts/")) for n in names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], timeout=300)
    python = venv / "bin" / "python"
    pins = [
        line
        for line in (REPO / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-e"))
    ]
    (tmp_path / "constraints.txt").write_text("\n".join(pins) + "\n")
    _run(
        [python, "-m", "pip", "install", "-q", wheel, "-c", tmp_path / "constraints.txt"],
        timeout=3600,
    )

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = _run([python, "-c", "import osc_tf; print(osc_tf.__file__)"], cwd=elsewhere)
    assert where.stdout.startswith(str(venv))
    quickstart = ["--gin_file", "gin/experiments/quickstart.gin", "--print_config"]
    for command in ([python, "-m", "osc_tf.train"], [venv / "bin" / "osc-tf-train"]):
        done = _run([*command, *quickstart], cwd=elsewhere, timeout=600)
        assert done.stderr == ""
        assert "train.num_steps = 6000  # bound" in done.stdout
        assert "ViT.num_layers = 2  # bound" in done.stdout
