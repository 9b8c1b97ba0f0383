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

import argparse
import logging
import sys

import gin

from osc_tf import config, training

PREEMPTED = 75  # EX_TEMPFAIL: stopped at a checkpoint; re-running resumes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    parser.add_argument("--workdir", help="run directory (overrides train.workdir)")
    parser.add_argument("--print_config", action="store_true", help="print every parameter, exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)  # TFDS INFO lines and deprecation noise

    params = list(args.gin_param)
    if args.workdir:
        params.append(f"train.workdir = {args.workdir!r}")
    try:
        config.parse(args.gin_file, params)
    except config.ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.describe())
        return 0

    result = gin.get_configurable(training.train)()
    return {"finished": 0, "preempted": PREEMPTED}.get(result["status"], 1)


if __name__ == "__main__":
    sys.exit(main())
