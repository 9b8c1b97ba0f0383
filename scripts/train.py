"""Trains a model configured with gin.

    # the quickstart: synthetic scenes, CPU, minutes (builds the data if missing)
    python scripts/train.py --gin_file gin/experiments/quickstart.gin

    # the original study's defaults on CLEVR with masks (prepare the data first)
    python scripts/train.py --gin_file gin/train.gin --gin_file gin/data/clevr_with_masks.gin \
        --gin_param 'train.batch_size=16' --gin_param 'ViT.embed_dim=128' --workdir runs/a

    # every configurable parameter with its default, then exit
    python scripts/train.py --gin_file gin/train.gin --print_config

Re-running with the same --workdir resumes from its newest checkpoint; a larger
``train.num_steps`` continues training. SIGTERM, SIGINT or SIGUSR2 (SLURM's
time-limit warning) saves a checkpoint and exits with status 75 ("preempted: run
again to resume"), as scripts/sweep.py does; 0 means the run finished.
"""

import sys

from osc_tf.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
