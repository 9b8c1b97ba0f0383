"""Prepare a dataset for training: native DeepMind file or synthetic scenes -> TFDS.

    python scripts/prepare_data.py --dataset synthetic
    python scripts/prepare_data.py --dataset clevr_with_masks \
        --manual_dir ~/multi-object-datasets/clevr_with_masks
    python scripts/prepare_data.py --dataset multi_dsprites --variant colored_on_grayscale \
        --manual_dir ~/multi-object-datasets --num_examples 100000 --data_dir /data/tfds

The manual dir holds the official file (e.g. clevr_with_masks_train.tfrecords),
directly or in a <dataset>/ sub-directory. --data_dir defaults to TFDS's
($TFDS_DATA_DIR or ~/tensorflow_datasets). A complete dataset is never rebuilt
without --overwrite; a failed or interrupted build leaves nothing that loads.
"""

import argparse
import sys

from osc_tf.data import multi_object, tfds_builder


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dataset", required=True, choices=[tfds_builder.SYNTHETIC, *multi_object.DATASETS]
    )
    parser.add_argument("--variant", help="multi_dsprites / objects_room variant")
    parser.add_argument("--manual_dir", help="folder with the official .tfrecords file")
    parser.add_argument("--data_dir", help="TFDS data dir (default: TFDS's)")
    parser.add_argument(
        "--num_examples", type=int, help="first N native records / N synthetic scenes"
    )
    parser.add_argument("--height", type=int, help="synthetic image height (default 120)")
    parser.add_argument("--width", type=int, help="synthetic image width (default 160)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic scene stream")
    parser.add_argument("--overwrite", action="store_true", help="rebuild a complete dataset")
    args = parser.parse_args(argv)
    try:
        builder = tfds_builder.builder(
            args.dataset,
            args.variant,
            data_dir=args.data_dir,
            num_examples=args.num_examples,
            height=args.height,
            width=args.width,
            seed=args.seed,
        )
        if builder.is_prepared() and not args.overwrite:
            print(
                f"{builder.data_dir} already holds the complete dataset; pass --overwrite "
                "to rebuild it.",
                file=sys.stderr,
            )
            return 1
        tfds_builder.prepare(builder, manual_dir=args.manual_dir, overwrite=args.overwrite)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(tfds_builder.summary(builder))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
