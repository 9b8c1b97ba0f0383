"""Prepares a dataset for training: native DeepMind file or synthetic scenes -> TFDS.

    osc-tf-prepare-data --dataset synthetic
    osc-tf-prepare-data --dataset clevr_with_masks \
        --manual_dir ~/multi-object-datasets/clevr_with_masks
    osc-tf-prepare-data --dataset multi_dsprites --variant colored_on_grayscale \
        --manual_dir ~/multi-object-datasets --num_examples 100000 --data_dir /data/tfds

The manual dir holds the official file (e.g. clevr_with_masks_train.tfrecords),
directly or in a <dataset>/ sub-directory. --data_dir defaults to TFDS's
($TFDS_DATA_DIR or ~/tensorflow_datasets). A complete dataset is never rebuilt
without --overwrite; a failed or interrupted build leaves nothing that loads.
"""

from __future__ import annotations

import argparse
import sys

from osc_tf.cli import common


def _arguments(p: argparse.ArgumentParser) -> None:
    from osc_tf.data import multi_object, tfds_builder

    p.add_argument(
        "--dataset", required=True, choices=[tfds_builder.SYNTHETIC, *multi_object.DATASETS]
    )
    p.add_argument("--variant", help="multi_dsprites / objects_room variant")
    p.add_argument("--manual_dir", help="folder with the official .tfrecords file")
    p.add_argument("--data_dir", help="TFDS data dir (default: TFDS's)")
    p.add_argument("--num_examples", type=int, help="first N native records / N synthetic scenes")
    p.add_argument("--height", type=int, help="synthetic image height (default 120)")
    p.add_argument("--width", type=int, help="synthetic image width (default 160)")
    p.add_argument("--seed", type=int, default=0, help="synthetic scene stream")
    p.add_argument("--overwrite", action="store_true", help="rebuild a complete dataset")


def main(argv: list[str] | None = None) -> int:
    return common.main(__doc__, _arguments, _prepare, argv, start_first=True)


def _prepare(args) -> int:
    from osc_tf.data import tfds_builder

    options = ("data_dir", "num_examples", "height", "width", "seed")
    builder = tfds_builder.builder(
        args.dataset, args.variant, **{name: getattr(args, name) for name in options}
    )
    if builder.is_prepared() and not args.overwrite:
        print(
            f"{builder.data_dir} already holds the complete dataset; pass --overwrite "
            "to rebuild it.",
            file=sys.stderr,
        )
        return 1
    tfds_builder.prepare(builder, manual_dir=args.manual_dir, overwrite=args.overwrite)
    print(tfds_builder.summary(builder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
