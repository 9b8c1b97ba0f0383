"""Exports a training run as a TensorFlow SavedModel with named endpoints.

    python scripts/export.py --workdir runs/a                 # -> runs/a/export
    python scripts/export.py --workdir runs/a --out /srv/models/osc/1
    saved_model_cli show --all --dir runs/a/export

Endpoints: ``embed(images)`` (also ``serving_default``) and
``objects(images, num_slots)``; see osc_tf/export.py. The model is rebuilt from
the workdir's operative_config.gin and its newest checkpoint (or --checkpoint).
"""

import argparse
import sys

from osc_tf import training
from osc_tf.export import export_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a training run's directory")
    parser.add_argument("--out", help="SavedModel directory (default: WORKDIR/export)")
    parser.add_argument("--checkpoint", help="checkpoint prefix (default: the newest)")
    args = parser.parse_args(argv)

    run = training.load(args.workdir, args.checkpoint)
    path = export_model(run["model"], args.workdir, run["data"].crop_size, out=args.out)
    print(f"exported step {run['step']} ({run['checkpoint']}) to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
