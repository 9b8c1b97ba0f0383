"""Imports a checkpoint of the original PyTorch study into an osc_tf workdir.

    osc-tf-import-original --checkpoint outputs/2022-03-01/12-00-00/checkpoint.49.pth \
        --workdir runs/original

The checkpoint is the original's ``checkpoint.<epoch>.pth`` (``{"model": state_dict,
"optimizer": ..., "steps": int}``); reading it needs PyTorch (optional), an ``.npz``
of the same state dict only NumPy. The architecture comes from the run's Hydra
configuration beside it (or --original_config), translated to gin bindings after
--base_gin_file; then --gin_file and --gin_param. README: "The original's weights".
"""

from __future__ import annotations

import argparse
import sys

from osc_tf.cli import common


def _arguments(p: argparse.ArgumentParser) -> None:
    from osc_tf.original import BASE_GIN_FILE  # no TensorFlow: hydra, weights, checkpoint

    p.add_argument("--checkpoint", required=True, help="checkpoint.<epoch>.pth or .npz")
    p.add_argument("--workdir", required=True, help="the osc_tf workdir to write")
    p.add_argument(
        "--gin_file", action="append", default=[], help="applied after the original's configuration"
    )
    p.add_argument("--gin_param", action="append", default=[], help="applied last")
    p.add_argument("--base_gin_file", default=BASE_GIN_FILE, help=f"defaults ({BASE_GIN_FILE})")
    p.add_argument(
        "--original_config",
        help="the original run's Hydra config.yaml (default: .hydra/config.yaml or train.yaml "
        "beside the checkpoint)",
    )
    p.add_argument(
        "--ignore_original_config", action="store_true", help="configure with gin files only"
    )
    p.add_argument("--step", type=int, help="step to record (default: the checkpoint's)")
    p.add_argument("--overwrite", action="store_true", help="replace a workdir's checkpoints")


def main(argv: list[str] | None = None) -> int:
    return common.main(__doc__, _arguments, _import, argv)


def _import(args) -> int:
    from osc_tf.original import import_checkpoint

    info = import_checkpoint(
        args.checkpoint,
        args.workdir,
        args.gin_file,
        args.gin_param,
        base_gin_file=args.base_gin_file,
        original_config=args.original_config,
        ignore_original_config=args.ignore_original_config,
        step=args.step,
        overwrite=args.overwrite,
    )
    source = info.get("original_config") or "gin"
    print(
        f"imported {info['tensors']} tensors ({info['parameters']:,} parameters) from "
        f"{args.checkpoint} into {info['checkpoint']} at step {info['step']}; "
        f"architecture from {source}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
