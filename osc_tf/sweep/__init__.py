"""Hyper-parameter sweeps: plan the runs of a grid, launch them, summarise them.

    runs = plan(["gin/train.gin"], [], ["ViT.num_layers=2,4", "ViT.num_heads=4,8"], "runs/s")
    launch(runs, executor="slurm", resources=Resources(gpus_per_node=1, time="24:00:00"))
    print(format_table(summarize("runs/s")))

``scripts/sweep.py`` is the command line. ``grid`` names and configures the runs,
``launch`` runs them through submitit and records their status, ``summary``
tabulates a sweep directory.
"""

from osc_tf.sweep.grid import Axis, Run, parse_axis, plan, split_values
from osc_tf.sweep.launch import (
    EXECUTORS,
    Resources,
    SweepRun,
    check_config,
    launch,
    minutes,
    run_state,
)
from osc_tf.sweep.summary import format_seed_table, format_table, summarize, summarize_seeds

__all__ = [
    "EXECUTORS",
    "Axis",
    "Resources",
    "Run",
    "SweepRun",
    "check_config",
    "format_seed_table",
    "format_table",
    "launch",
    "minutes",
    "parse_axis",
    "plan",
    "run_state",
    "split_values",
    "summarize",
    "summarize_seeds",
]
