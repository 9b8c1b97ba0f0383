"""Trains a model configured with gin (``osc-tf-train``, ``python -m osc_tf.train``).

    osc-tf-train --gin_file gin/experiments/quickstart.gin
    osc-tf-train --gin_file gin/train.gin --gin_param 'train.batch_size = 16' --workdir runs/a
    osc-tf-train --gin_file gin/train.gin --print_config

``gin/...`` files are found relative to the working directory, else in the
package. Re-running with the same --workdir resumes from its newest checkpoint.
Exit status: 0 finished, 75 stopped at a checkpoint by a signal (run again to
resume), 2 a bad value, 1 a missing file or dataset or a non-finite loss.
"""

from __future__ import annotations

import argparse
import sys

from osc_tf.cli import common

PREEMPTED = 75  # EX_TEMPFAIL: stopped at a checkpoint; re-running resumes


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    p.add_argument("--gin_param", action="append", default=[], help="gin binding (repeatable)")
    p.add_argument("--workdir", help="run directory (overrides train.workdir)")
    p.add_argument("--print_config", action="store_true", help="print every parameter, exit")


def main(argv: list[str] | None = None) -> int:
    return common.main(__doc__, _arguments, _train, argv)


def _train(args) -> int:
    import gin

    from osc_tf import config, training

    params = list(args.gin_param)
    if args.workdir:
        params.append(f"train.workdir = {args.workdir!r}")
    config.parse(args.gin_file, params)
    if args.print_config:
        print(config.describe())
        return 0
    result = gin.get_configurable(training.train)()
    return {"finished": 0, "preempted": PREEMPTED}.get(result["status"], 1)


if __name__ == "__main__":
    sys.exit(main())
