"""Evaluates a training run: object discovery (FG-ARI, mBO, IoU/Dice), VQA probe, figures.

    python scripts/evaluate.py --workdir runs/a
    python scripts/evaluate.py --workdir runs/a --checkpoint runs/a/checkpoints/ckpt-5000 \
        --split test --max_samples 2000
    python scripts/evaluate.py --workdir runs/a --gin_file gin/eval/original.gin

Rebuilds the model and the data from the workdir's operative_config.gin, then applies
--gin_file files and --gin_param bindings in that order (later ones win; e.g.
gin/eval/original.gin, the original study's evaluation protocol). Restores the newest
checkpoint (or --checkpoint) and evaluates it beside the same model at initialisation.
Writes metrics.json, figures/ and TensorBoard events to the workdir.
"""

import argparse
import json
import sys

from osc_tf import config, factories, training
from osc_tf.evaluation.run import DEFAULT_PROTOCOL, evaluate_run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a training run's directory")
    parser.add_argument("--checkpoint", help="checkpoint prefix (default: the newest)")
    parser.add_argument("--split", default="test", help="split to evaluate on")
    parser.add_argument("--max_samples", type=int, help="evaluate on the first N images")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument(
        "--gin_file",
        action="append",
        default=[],
        help="gin file applied after the workdir's configuration (repeatable)",
    )
    parser.add_argument(
        "--gin_param", action="append", default=[], help="extra gin binding, applied last"
    )
    args = parser.parse_args(argv)

    try:
        bindings = [f"include {config.resolve(path)!r}" for path in args.gin_file]
    except config.ConfigError as e:
        parser.error(str(e))
    run = training.load(args.workdir, args.checkpoint, bindings + args.gin_param)
    payload = evaluate_run(
        run["model"],
        run["data"],
        args.workdir,
        run["step"],
        init_model_fn=lambda: factories.build_model(run["seed"], run["data"].crop_size),
        split=args.split,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        checkpoint=run["checkpoint"],
    )
    print(json.dumps(payload, indent=2, sort_keys=True))
    name = payload["protocol"]["name"]
    figures = "figures/" if name == DEFAULT_PROTOCOL else f"figures/{name}/"
    print(f"wrote {args.workdir}/metrics.json and {args.workdir}/{figures} (protocol {name!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
