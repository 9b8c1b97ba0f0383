"""Prints performance figures; one subject per invocation.

    python scripts/benchmark.py data        # native parsing, prepared decoding, train pipeline
    python scripts/benchmark.py matching    # in-graph Hungarian vs scipy
    python scripts/benchmark.py train       # full training step, images/s and peak RSS

Each subject lives in ``scripts/benchmarks/<subject>.py`` and takes its own flags
(``python scripts/benchmark.py <subject> --help``). Record results with the
machine and the command in docs/benchmarks.md. The process environment is the
commands' (``osc_tf.cli.common.PROCESS_ENVIRONMENT``; a variable already set wins).
"""

import importlib
import pkgutil
import sys

import benchmarks  # scripts/benchmarks/, beside this file (sys.path[0] when run as a script)

from osc_tf.cli.common import set_process_environment


def main(argv: list[str]) -> int:
    subjects = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__))
    if not argv or argv[0] not in subjects:
        print(f"usage: benchmark.py {{{','.join(subjects)}}} [flags]", file=sys.stderr)
        return 2
    set_process_environment()  # as the commands do, before TensorFlow loads
    module = importlib.import_module(f"benchmarks.{argv[0]}")
    return module.main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
