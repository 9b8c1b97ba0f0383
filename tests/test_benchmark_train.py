"""scripts/benchmark.py train runs the real training step in a child process per row."""

import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_train_benchmark_row_reports_its_figures(tmp_path):
    out = tmp_path / "rows.jsonl"
    cmd = [sys.executable, "scripts/benchmark.py", "train", "--rows", "b16,recompute"]
    cmd += ["--steps", "2", "--warmup", "1", "--image_size", "32", "--json", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "GFLOP/s" in done.stdout.splitlines()[0]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["row"] for r in rows] == ["b16", "recompute"]
    assert [r["batch_size"] for r in rows] == [16, 64]
    for r in rows:
        # the default model (gin/model/default.gin; 282 880 at 128², the pos-emb is 16²·64)
        assert r["params"] == 282_880 - (16 * 16 - 4 * 4) * 64
        assert math.isfinite(r["loss"]) and r["loss"] > 0
        assert 0 < r["step_ms_min"] <= r["step_ms"] <= r["step_ms_max"]
        assert r["images_per_s"] > 0 and 0.2 < r["peak_rss_gb"] < 20
