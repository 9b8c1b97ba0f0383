"""``python -m osc_tf.train``: the training command, ``osc_tf.cli.train`` (``osc-tf-train``)."""

import sys

from osc_tf.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
