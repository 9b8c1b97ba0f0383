"""Runs a hyper-parameter sweep (the product of --grid axes), or summarises one.

    osc-tf-sweep --gin_file gin/experiments/quickstart.gin --sweep_dir runs/sweep \
        --grid 'ViT.num_layers=2,4' \
        --grid 'losses=gin/losses/more_objects.gin,gin/losses/more_global.gin'
    osc-tf-sweep ... --executor slurm --slurm_partition gpu --gpus_per_node 1 --time 24:00:00
    osc-tf-sweep --summarize runs/sweep     # table + runs/sweep/summary.csv
    osc-tf-sweep --gin_file gin/experiments/discovery.gin --sweep_dir runs/seeds \
        --grid 'train.seed=0,1,2'           # --summarize then adds mean ± std per group

Re-running the same command skips finished runs and resumes the others from their
checkpoints. Exit status: 0 when every run finished (or was submitted), 75 when
some were preempted (run again to resume), 1 when some failed, 2 a bad value.
"""

from __future__ import annotations

import argparse
import os
import sys

from osc_tf.cli import common


def _arguments(p: argparse.ArgumentParser) -> None:
    from osc_tf import sweep

    p.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    p.add_argument("--gin_param", action="append", default=[], help="fixed binding (repeatable)")
    p.add_argument("--grid", action="append", default=[], help="'KEY=V1,V2' axis (repeatable)")
    p.add_argument("--sweep_dir", help="directory holding one workdir per run")
    p.add_argument("--executor", choices=sweep.EXECUTORS, default="local")
    p.add_argument("--max_parallel", type=int, default=1, help="runs at the same time")
    p.add_argument("--slurm_partition", help="SLURM partition")
    p.add_argument("--gpus_per_node", type=int, default=0, help="GPUs per machine of a run")
    p.add_argument("--nodes", type=int, default=1, help="machines per run (SLURM)")
    p.add_argument("--time", help="time limit per job, HH:MM:SS or D-HH:MM:SS")
    p.add_argument("--cpus_per_task", type=int, help="SLURM --cpus-per-task")
    p.add_argument("--mem", help="SLURM --mem, e.g. 64G")
    p.add_argument("--max_requeues", type=int, default=20, help="requeues after time limits")
    p.add_argument("--relaunch_active", action="store_true", help="also runs marked running")
    p.add_argument("--dry_run", action="store_true", help="check and list the runs, launch nothing")
    p.add_argument("--summarize", metavar="DIR", help="print DIR's runs as a table + CSV, exit")


def main(argv: list[str] | None = None) -> int:
    return common.main(__doc__, _arguments, _sweep, argv, start_first=True)


def _sweep(args) -> int:
    from osc_tf import sweep

    if args.summarize:
        rows = sweep.summarize(args.summarize)
        print(sweep.format_table(rows))
        seeds_csv = os.path.join(args.summarize, sweep.summary.SEEDS_FILE)
        groups = sweep.summarize_seeds(rows, seeds_csv)
        if groups:
            print(f"\nmean ± std over {sweep.summary.SEED_KEY} (also in {seeds_csv}):")
            print(sweep.format_seed_table(groups))
        return 0
    if not args.sweep_dir:
        raise ValueError("--sweep_dir is required (or --summarize DIR)")
    runs = sweep.plan(args.gin_file, args.gin_param, args.grid, args.sweep_dir)
    if args.dry_run:
        for run in runs:
            print(f"{run.name}  ({sweep.check_config(run)} steps)")
        return 0
    resources = sweep.Resources(
        gpus_per_node=args.gpus_per_node,
        nodes=args.nodes,
        time=args.time,
        cpus_per_task=args.cpus_per_task,
        mem=args.mem,
        partition=args.slurm_partition,
        max_requeues=args.max_requeues,
    )
    states = sweep.launch(runs, args.executor, args.max_parallel, resources, args.relaunch_active)
    if "failed" in states.values():
        return 1
    return 75 if "preempted" in states.values() else 0


if __name__ == "__main__":
    sys.exit(main())
