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

import sys

from osc_tf.cli.prepare_data import main

if __name__ == "__main__":
    sys.exit(main())
