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

import sys

from osc_tf.cli.import_original import main

if __name__ == "__main__":
    sys.exit(main())
