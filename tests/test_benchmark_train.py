"""scripts/benchmark.py train runs the real training step in a child process per row."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # two child processes tracing the full training step (~1.5 min)
def test_train_benchmark_row_reports_its_figures(tmp_path):
    out = tmp_path / "rows.jsonl"
    cmd = [sys.executable, "scripts/benchmark.py", "train", "--rows", "b16,quickstart"]
    cmd += ["--steps", "2", "--warmup", "1", "--image_size", "32", "--json", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    first = done.stdout.splitlines()[0]
    assert "cores" in first and "GFLOP/s" in first  # the machine's identity and scale
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == ["b16", "quickstart"]
    assert [(r["batch_size"], r["image_size"]) for r in rows] == [(16, 32), (32, 64)]
    # the default model (gin/model/default.gin; 282 880 at 128², the pos-emb is 16²·64)
    assert rows[0]["params"] == 282_880 - (16 * 16 - 4 * 4) * 64
    # the quickstart's: 2 of the 4 blocks (33 280 parameters each), 8² positions
    assert rows[1]["params"] == 282_880 - 2 * 33_280 - (16 * 16 - 8 * 8) * 64
    for r in rows:
        assert math.isfinite(r["loss"]) and r["loss"] > 0
        assert 0 < r["step_ms_min"] <= r["step_ms"] <= r["step_ms_max"]
        assert r["images_per_s"] > 0 and 0.2 < r["peak_rss_gb"] < 20
