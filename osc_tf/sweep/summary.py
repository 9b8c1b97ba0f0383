"""One row per run of a sweep directory: overrides, final losses, metrics, status.

    rows = summarize("runs/sweep")       # also writes runs/sweep/summary.csv
    print(format_table(rows))
    print(format_seed_table(summarize_seeds(rows)))   # mean ± std over train.seed

Columns: ``name``, one per axis key, ``status``, ``step``, the final training
losses (``loss`` and each ``loss_*`` term, from the last logged step), the
trained model's ``fg_ari``, ``mbo``, ``iou``, ``vqa_slots_ap`` and
``vqa_global_ap`` (``metrics.json``; empty where a run has none), with a
decoder's masks also ``dec_fg_ari``, ``dec_mbo`` and ``dec_iou``, and ``error``
(a failed run's error line). The CSV keeps full precision; the table shows 4
significant digits. Runs that differ only in ``train.seed`` form one group of
``summarize_seeds`` (mean ± sample std over its finished runs).
"""

from __future__ import annotations

import csv
import os

from osc_tf.sweep.launch import RUN_FILE, STATUS_FILE, read_json

SUMMARY_FILE = "summary.csv"
SEEDS_FILE = "summary_seeds.csv"
SEED_KEY = "train.seed"
METRICS = {
    "fg_ari": "segmentation/fg_ari",
    "mbo": "segmentation/mbo",
    "iou": "segmentation/iou",
    "vqa_slots_ap": "vqa_slots/ap",
    "vqa_global_ap": "vqa_global/ap",
}
#: Columns of a decoder's masks, shown when some run has them.
DECODER_METRICS = {
    "dec_fg_ari": "segmentation_decoder/fg_ari",
    "dec_mbo": "segmentation_decoder/mbo",
    "dec_iou": "segmentation_decoder/iou",
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
    row |= {column: metrics.get(key) for column, key in (METRICS | DECODER_METRICS).items()}
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
    _write_csv(csv_path or os.path.join(sweep_dir, SUMMARY_FILE), rows)
    return rows


def _write_csv(path: str, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)


def _is_value(column: str) -> bool:
    return "loss" in column or column in METRICS or column in DECODER_METRICS


def summarize_seeds(rows: list[dict], csv_path: str | None = None) -> list[dict]:
    """Groups runs that differ only in ``train.seed``: mean and std of every value.

    Args:
        rows: ``summarize``'s rows (they need a ``train.seed`` column, i.e. a
            sweep with a ``--grid train.seed=...`` axis).
        csv_path: where to write the groups as CSV (default: nowhere).

    Returns:
        One dict per group, in the order of its first run: the other axes'
        values, ``runs`` (finished runs / runs), ``seeds`` (of the finished
        runs) and, per final loss and metric, ``<column>`` the mean and
        ``<column>_std`` the sample standard deviation (ddof 1; None for one
        run) over the group's finished runs that have it. Empty without a
        seed axis.
    """
    if not rows or SEED_KEY not in rows[0]:
        return []
    columns = list(rows[0])
    axes = columns[1 : columns.index("status")]
    keys = [c for c in axes if c != SEED_KEY]
    values = [c for c in columns if _is_value(c)]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, members in groups.items():
        done = [r for r in members if r["status"] == "finished"]
        group = dict(zip(keys, key, strict=True))
        group["runs"] = f"{len(done)}/{len(members)}"
        group["seeds"] = ",".join(str(r[SEED_KEY]) for r in done)
        for column in values:
            numbers = [float(r[column]) for r in done if r[column] is not None]
            mean = sum(numbers) / len(numbers) if numbers else None
            std = None
            if len(numbers) > 1:
                std = (sum((x - mean) ** 2 for x in numbers) / (len(numbers) - 1)) ** 0.5
            group[column], group[f"{column}_std"] = mean, std
        out.append(group)
    if csv_path:
        _write_csv(csv_path, out)
    return out


def format_seed_table(groups: list[dict]) -> str:
    """``summarize_seeds``' groups as a table of ``mean ± std`` (empty list: a note)."""
    if not groups:
        return f"(no {SEED_KEY} axis to group runs by)"
    shown = []
    for group in groups:
        row = {}
        for column, value in group.items():
            if column.endswith("_std") and _is_value(column[: -len("_std")]):
                continue
            if _is_value(column) and value is not None:
                std = group[f"{column}_std"]
                value = f"{value:.4g}" if std is None else f"{value:.4g} ± {std:.2g}"
            row[column] = value
        shown.append(row)
    return format_table(shown)


def _columns(rows: list[dict]) -> list[str]:
    """Keys in first-seen order, with status, step, losses, metrics and error last."""
    tail = ["status", "step"]
    losses = sorted({k for r in rows for k in r if "loss" in k}, key=lambda k: (k != "loss", k))
    decoder = [c for c in DECODER_METRICS if any(r.get(c) is not None for r in rows)]
    tail += losses + list(METRICS) + decoder + ["error"]
    head = []
    for row in rows:
        head += [k for k in row if k not in tail and k not in head and k not in DECODER_METRICS]
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
