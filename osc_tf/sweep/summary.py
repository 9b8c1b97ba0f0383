"""One row per run of a sweep directory: overrides, final losses, metrics, status.

    rows = summarize("runs/sweep")       # also writes runs/sweep/summary.csv
    print(format_table(rows))

Columns: ``name``, one per axis key, ``status``, ``step``, the final training
losses (``loss`` and each ``loss_*`` term, from the last logged step), the
trained model's ``fg_ari``, ``iou``, ``vqa_slots_ap`` and ``vqa_global_ap``
(``metrics.json``; empty where a run has none), and ``error`` (a failed run's
error line). The CSV keeps full precision; the table shows 4 significant digits.
"""

from __future__ import annotations

import csv
import os

from osc_tf.sweep.launch import RUN_FILE, STATUS_FILE, read_json

SUMMARY_FILE = "summary.csv"
METRICS = {
    "fg_ari": "segmentation/fg_ari",
    "iou": "segmentation/iou",
    "vqa_slots_ap": "vqa_slots/ap",
    "vqa_global_ap": "vqa_global/ap",
}


def _row(workdir: str) -> tuple[int, dict]:
    spec = read_json(os.path.join(workdir, RUN_FILE))
    status = read_json(os.path.join(workdir, STATUS_FILE)) or {}
    final = read_json(os.path.join(workdir, "train_result.json"))
    metrics = (read_json(os.path.join(workdir, "metrics.json")) or {}).get("trained") or {}
    result = status.get("result") or final or {}
    row = {"name": spec["name"], **spec["overrides"]}
    if status:
        row["status"] = status["status"]
    else:
        row["status"] = (final or {}).get("status", "not started")
    row["step"] = status.get("step", result.get("step"))
    row |= {k: v for k, v in sorted(result.items(), key=lambda kv: kv[0] != "loss") if "loss" in k}
    row |= {column: metrics.get(key) for column, key in METRICS.items()}
    row["error"] = status.get("error") if row["status"] == "failed" else None
    return spec.get("index", 0), row


def summarize(sweep_dir: str, csv_path: str | None = None) -> list[dict]:
    """Rows of every run under ``sweep_dir`` (in sweep order); writes them as CSV.

    Args:
        sweep_dir: a directory given to ``scripts/sweep.py --sweep_dir``.
        csv_path: where to write the CSV (default ``<sweep_dir>/summary.csv``).

    Returns:
        One dict per run, every row with the same keys (None where a value is missing).
    """
    found = []
    for entry in sorted(os.listdir(sweep_dir)):
        workdir = os.path.join(sweep_dir, entry)
        if os.path.isfile(os.path.join(workdir, RUN_FILE)):
            found.append(_row(workdir))
    rows = [row for _, row in sorted(found, key=lambda pair: pair[0])]
    columns = _columns(rows)
    rows = [{c: row.get(c) for c in columns} for row in rows]
    with open(csv_path or os.path.join(sweep_dir, SUMMARY_FILE), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return rows


def _columns(rows: list[dict]) -> list[str]:
    """Keys in first-seen order, with status, step, losses, metrics and error last."""
    tail = ["status", "step"]
    losses = sorted({k for r in rows for k in r if "loss" in k}, key=lambda k: (k != "loss", k))
    tail += losses + list(METRICS) + ["error"]
    head = []
    for row in rows:
        head += [k for k in row if k not in tail and k not in head]
    return head + tail


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned plain-text table (empty sweep: a note)."""
    if not rows:
        return "(no runs found)"
    columns = list(rows[0])
    cells = [columns] + [[_text(r[c]) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in cells
    )
