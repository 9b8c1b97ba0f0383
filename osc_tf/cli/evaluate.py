"""Evaluates a training run: object discovery (FG-ARI, mBO, IoU/Dice), VQA probe, figures.

    osc-tf-evaluate --workdir runs/a
    osc-tf-evaluate --workdir runs/a --checkpoint runs/a/checkpoints/ckpt-5000 --max_samples 2000
    osc-tf-evaluate --workdir runs/a --gin_file gin/eval/original.gin

Rebuilds the model and the data from the workdir's operative_config.gin, then applies
--gin_file files and --gin_param bindings in that order (later ones win). Restores
the newest checkpoint (or --checkpoint) and evaluates it beside the same model at
initialisation. Writes metrics.json, figures/ and TensorBoard events to the workdir.
"""

from __future__ import annotations

import argparse
import sys

from osc_tf.cli import common


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", required=True, help="a training run's directory")
    p.add_argument("--checkpoint", help="checkpoint prefix (default: the newest)")
    p.add_argument("--split", default="test", help="split to evaluate on")
    p.add_argument("--max_samples", type=int, help="evaluate on the first N images")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument(
        "--gin_file",
        action="append",
        default=[],
        help="gin file applied after the workdir's configuration (repeatable)",
    )
    p.add_argument("--gin_param", action="append", default=[], help="extra gin binding, last")


def main(argv: list[str] | None = None) -> int:
    return common.main(__doc__, _arguments, _evaluate, argv)


def _evaluate(args) -> int:
    import json

    from osc_tf import config, factories, training
    from osc_tf.evaluation.run import DEFAULT_PROTOCOL, evaluate_run

    bindings = [f"include {config.resolve(path)!r}" for path in args.gin_file]
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
