"""What every command shares: ``--verbose``, a quiet TensorFlow start-up, one-line errors.

``run`` sets the process up before TensorFlow is imported (``PROCESS_ENVIRONMENT``:
the Keras backend and TensorFlow's host-memory allocator; unless ``--verbose``,
TensorFlow's C++ log level and a filter on the start-up lines that TensorFlow
prints on a machine without a GPU), then runs the command.
A user's mistake ends in one line ``error: ...`` on stderr: exit status 2 for a
bad value (gin, flags), 1 for a missing file or dataset or a non-finite loss;
``--verbose`` shows TensorFlow's start-up log and the traceback instead. Nothing
here runs at import: ``import osc_tf`` changes nothing in the user's process.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable

#: Lines TensorFlow writes to stderr while it loads and looks for GPUs; their C++
#: log level filter (TF_CPP_MIN_LOG_LEVEL) is not set up yet for most of them.
START_UP_NOISE = (
    re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    re.compile(
        r"^[IWE]\d{4} [\d:.]+\s+\d+ (cudart_stub|cuda_platform|cuda_driver|cuda_diagnostics|"
        r"cuda_executor|cuda_dnn|cuda_fft|cuda_blas|cpu_feature_guard|port|gpu_device|"
        r"computation_placer|dso_loader|py_utils)\.cc:\d+\] "
    ),
    re.compile(r"^To enable the following instructions: .* rebuild TensorFlow"),
)


def main(
    doc: str,
    arguments: Callable[[argparse.ArgumentParser], None],
    command: Callable[[argparse.Namespace], int],
    argv: list[str] | None = None,
    start_first: bool = False,
) -> int:
    """A command: parses ``argv`` (``arguments`` adds the flags; ``--verbose`` is added
    here) and ``run``s ``command(args)``. ``start_first``: start TensorFlow before the
    parser is built (its choices come from the library)."""
    argv = sys.argv[1:] if argv is None else argv
    if start_first:
        start("--verbose" in argv)
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    arguments(parser)
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's start-up log, INFO logs and full tracebacks",
    )
    args = parser.parse_args(argv)
    return run(lambda: command(args), args.verbose)


@contextlib.contextmanager
def _filtered_stderr(noise=START_UP_NOISE):
    """Holds back what is written to file descriptor 2 and passes on all but ``noise``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if not any(pattern.search(line) for pattern in noise):
                    sys.stderr.write(line)
            sys.stderr.flush()


#: Set by the commands (and ``scripts/benchmark.py``) before TensorFlow loads, unless
#: the user set them. ``TF_CPU_ALLOCATOR_USE_BFC``: TensorFlow's best-fit allocator with
#: coalescing keeps freed host memory for the next step's tensors, where the default
#: allocator returns each large tensor to the system and faults its pages in again the
#: next time; the default training step took 1,267-1,443 ms and peaked at 2.26-2.28 GB
#: with it, 1,422-1,748 ms and 2.36-2.52 GB without (docs/benchmarks.md).
PROCESS_ENVIRONMENT = {"KERAS_BACKEND": "tensorflow", "TF_CPU_ALLOCATOR_USE_BFC": "true"}

_started: list[bool] = []


def set_process_environment() -> None:
    """Sets ``PROCESS_ENVIRONMENT``'s variables that the user has not set."""
    for name, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def start(verbose: bool) -> None:
    """Prepares the process for TensorFlow and imports it (see the module docstring); once."""
    if _started:
        return
    _started.append(verbose)
    set_process_environment()
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("osc_tf").setLevel(logging.INFO)  # e.g. "resumed from ... at step N"
    logging.getLogger("absl").setLevel(logging.INFO if verbose else logging.ERROR)  # TFDS lines
    with contextlib.nullcontext() if verbose else _filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()  # looks for GPUs now, inside the filter


def run(command: Callable[[], int], verbose: bool) -> int:
    """Starts TensorFlow quietly, runs ``command`` and turns a user's mistake into one line."""
    start(verbose)
    from osc_tf.original.hydra import ImportFailure

    try:
        return command()
    except (OSError, ValueError, ImportFailure, FloatingPointError) as e:
        if verbose:
            raise
        message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"error: {message or type(e).__name__}", file=sys.stderr)
        return 2 if isinstance(e, (ValueError, ImportFailure)) else 1
