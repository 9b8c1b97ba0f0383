"""Exports a training run as a TensorFlow SavedModel with named endpoints.

    osc-tf-export --workdir runs/a                 # -> runs/a/export
    osc-tf-export --workdir runs/a --out /srv/models/osc/1

Endpoints: ``embed(images)`` (also ``serving_default``) and
``objects(images, num_slots)``; see osc_tf/export.py. The model is rebuilt from
the workdir's operative_config.gin and its newest checkpoint (or --checkpoint).
"""

from __future__ import annotations

import argparse
import sys

from osc_tf.cli import common


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, help="a training run's directory")
    p.add_argument("--out", help="SavedModel directory (default: WORKDIR/export)")
    p.add_argument("--checkpoint", help="checkpoint prefix (default: the newest)")


def main(argv: list[str] | None = None) -> int:
    return common.main(__doc__, _arguments, _export, argv)


def _export(args) -> int:
    from osc_tf import training
    from osc_tf.export import export_model

    run = training.load(args.workdir, args.checkpoint)
    path = export_model(run["model"], args.workdir, run["data"].crop_size, out=args.out)
    print(f"exported step {run['step']} ({run['checkpoint']}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
