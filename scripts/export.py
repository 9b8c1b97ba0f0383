"""Exports a training run as a TensorFlow SavedModel with named endpoints.

    python scripts/export.py --workdir runs/a                 # -> runs/a/export
    python scripts/export.py --workdir runs/a --out /srv/models/osc/1
    saved_model_cli show --all --dir runs/a/export

Endpoints: ``embed(images)`` (also ``serving_default``) and
``objects(images, num_slots)``; see osc_tf/export.py. The model is rebuilt from
the workdir's operative_config.gin and its newest checkpoint (or --checkpoint).
"""

import sys

from osc_tf.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
