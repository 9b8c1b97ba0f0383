"""One worker of the multi-worker test (tests/test_multi_worker.py), or its reference.

    python tests/multi_worker_check.py OUT.npz --gin_param ... [--gin_param ...]

Parses ``gin/tests/tiny.gin`` plus the bindings, runs ``train()`` (the cluster comes
from ``TF_CONFIG`` or the SLURM variables of the environment, if any) and writes
the model's final weights and train's result to ``OUT.npz``. The model is the one
``train()`` builds: ``osc_tf.training.build_model`` is wrapped to keep a reference
to it (the wrapped function still builds it).
"""

import argparse
import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import gin  # noqa: E402
import numpy as np  # noqa: E402

from osc_tf import config, training  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--gin_param", action="append", default=[])
    args = parser.parse_args(argv)
    config.parse(["gin/tests/tiny.gin"], args.gin_param)

    models = []
    build = training.build_model

    def keep(*a, **k):
        model = build(*a, **k)
        models.append(model)
        return model

    training.build_model = keep
    result = gin.get_configurable("train")()
    weights = {f"w{i:03d}": w.numpy() for i, w in enumerate(models[0].weights)}
    np.savez(args.out, result=json.dumps(result), **weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
