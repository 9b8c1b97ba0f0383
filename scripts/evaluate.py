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

import sys

from osc_tf.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
