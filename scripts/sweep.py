"""Runs a hyper-parameter sweep (the product of --grid axes), or summarises one.

    # 2 x 2 runs on this machine, one at a time, in runs/sweep/<overrides>
    python scripts/sweep.py --gin_file gin/experiments/quickstart.gin --sweep_dir runs/sweep \
        --grid 'ViT.num_layers=2,4' \
        --grid 'losses=gin/losses/more_objects.gin,gin/losses/more_global.gin'

    # the same as a SLURM job array, one GPU per run
    python scripts/sweep.py ... --executor slurm --slurm_partition gpu --gpus_per_node 1 \
        --time 24:00:00

    python scripts/sweep.py --summarize runs/sweep     # table + runs/sweep/summary.csv

Re-running the same command skips finished runs and resumes the others from their
checkpoints. Exit status: 0 when every run finished (or was submitted), 75 when
some were preempted (run again to resume), 1 when some failed.
"""

import sys

from osc_tf.cli.sweep import main

if __name__ == "__main__":
    sys.exit(main())
