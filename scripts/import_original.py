"""Imports a checkpoint of the original PyTorch study into an osc_tf workdir.

    python scripts/import_original.py \
        --checkpoint outputs/2022-03-01/12-00-00/checkpoint.49.pth --workdir runs/original
    python scripts/evaluate.py --workdir runs/original
    python scripts/export.py --workdir runs/original

The checkpoint is what the original's training writes every few epochs,
``checkpoint.<epoch>.pth`` in its Hydra run folder: ``{"model": state_dict,
"optimizer": ..., "steps": int}``. Reading it needs PyTorch (optional:
``pip install torch==2.13.0``). An ``.npz`` holding the state dict under the
same names needs only NumPy (no pickle).

The architecture comes from the original run's Hydra configuration,
``.hydra/config.yaml`` in the checkpoint's folder (else ``train.yaml`` there, or
``--original_config``), translated into gin bindings (architecture, backbone,
queries, object function, heads, crop size, dropouts) applied after
``--base_gin_file`` (default gin/train.gin, the original's defaults); then
``--gin_file`` and ``--gin_param`` apply, e.g. another dataset. Without a Hydra
configuration the gin files alone describe the model. A value of the original's
configuration that osc_tf cannot reproduce is an error naming it.

The workdir gets ``operative_config.gin``, a checkpoint in the format training
writes (the model's weights, a fresh optimizer at the original's step count,
the step) and ``original_import.json`` (where the weights came from). An
existing non-empty workdir is refused unless ``--overwrite`` (which replaces its
checkpoints and configuration and keeps its other files).
"""

import argparse
import sys

from osc_tf.original import BASE_GIN_FILE, ImportFailure, import_checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint.<epoch>.pth or .npz")
    parser.add_argument("--workdir", required=True, help="the osc_tf workdir to write")
    parser.add_argument(
        "--gin_file", action="append", default=[], help="applied after the original's configuration"
    )
    parser.add_argument("--gin_param", action="append", default=[], help="applied last")
    parser.add_argument("--base_gin_file", default=BASE_GIN_FILE, help="defaults (gin/train.gin)")
    parser.add_argument(
        "--original_config",
        help="the original run's Hydra config.yaml (default: .hydra/config.yaml or train.yaml "
        "beside the checkpoint)",
    )
    parser.add_argument(
        "--ignore_original_config", action="store_true", help="configure with gin files only"
    )
    parser.add_argument("--step", type=int, help="step to record (default: the checkpoint's)")
    parser.add_argument("--overwrite", action="store_true", help="replace a workdir's checkpoints")
    args = parser.parse_args(argv)
    try:
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
    except ImportFailure as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    source = info.get("original_config") or "gin"
    print(
        f"imported {info['tensors']} tensors ({info['parameters']:,} parameters) from "
        f"{args.checkpoint} into {info['checkpoint']} at step {info['step']}; "
        f"architecture from {source}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
