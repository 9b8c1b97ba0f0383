"""Losses under MirroredStrategy over 2 logical CPUs equal the single-device computation.

The logical devices must be configured before TensorFlow initialises its devices,
so the computation runs in its own process (tests/distributed_losses_check.py).
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.distributed
def test_replica_shares_sum_to_the_global_loss_and_gradients():
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    run = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "distributed_losses_check.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report.pop("matching_equal") is True
    names = ["ctr", "ctr_all", "ctr_all_uneven", "ctr_img", "ctr_uneven", "mse", "mse_uneven"]
    names += ["sim", "sim_img"]
    assert sorted(report) == names
    for name, errors in report.items():
        assert abs(errors["loss"]) > 0.05, name  # a real value, not a degenerate zero
        for key in ("loss_rel", "grad_w_rel", "grad_x_rel"):
            assert errors[key] <= 1e-5, (name, key, errors[key])
