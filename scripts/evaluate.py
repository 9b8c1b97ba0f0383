"""Evaluates a training run: object discovery (FG-ARI, mBO, IoU/Dice), VQA probe, figures.

    python scripts/evaluate.py --workdir runs/a
    python scripts/evaluate.py --workdir runs/a --checkpoint runs/a/checkpoints/ckpt-5000 \
        --split test --max_samples 2000

Rebuilds the model and the data from the workdir's operative_config.gin, restores
the newest checkpoint (or --checkpoint) and evaluates it beside the same model at
initialisation. Writes metrics.json, figures/ and TensorBoard events to the workdir.
"""

import argparse
import json
import sys

from osc_tf import workdir as workdir_lib
from osc_tf.evaluation.run import evaluate_run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a training run's directory")
    parser.add_argument("--checkpoint", help="checkpoint prefix (default: the newest)")
    parser.add_argument("--split", default="test", help="split to evaluate on")
    parser.add_argument("--max_samples", type=int, help="evaluate on the first N images")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--gin_param", action="append", default=[], help="extra gin binding")
    args = parser.parse_args(argv)

    run = workdir_lib.load(args.workdir, args.checkpoint, args.gin_param)
    payload = evaluate_run(
        run["model"],
        run["data"],
        args.workdir,
        run["step"],
        init_model_fn=lambda: workdir_lib.build_model(run["seed"], run["data"].crop_size),
        split=args.split,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        checkpoint=run["checkpoint"],
    )
    print(json.dumps(payload, indent=2, sort_keys=True))
    print(f"wrote {args.workdir}/metrics.json and {args.workdir}/figures/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
