"""What reproduces a run besides its configuration: ``run_info.json`` in the workdir.

Every start of a run appends its time, start step, seed, git revision (with
``+dirty`` for uncommitted changes; ``unknown`` outside a git checkout, e.g. an
installed package), TensorFlow and Keras versions and command line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import keras
import tensorflow as tf


def git_revision() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def write_run_info(workdir: str, seed: int, start_step: int) -> None:
    """Appends this start (seed, git revision, versions, command) to ``run_info.json``."""
    path = os.path.join(workdir, "run_info.json")
    starts = []
    if os.path.exists(path):
        with open(path) as f:
            starts = json.load(f).get("starts", [])
    starts.append(
        {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "start_step": start_step,
            "seed": seed,
            "git_revision": git_revision(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "command": sys.argv,
        }
    )
    with open(path + ".tmp", "w") as f:
        json.dump({"seed": seed, "starts": starts}, f, indent=2)
    os.replace(path + ".tmp", path)
