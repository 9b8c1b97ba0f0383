"""Multi-worker figures on one machine: agreement latency and training throughput.

    python scripts/benchmark.py scale                   # tiny model, 2 workers on 127.0.0.1
    python scripts/benchmark.py scale --steps 60 --batch_size 32 \
        --gin_param 'MultiObjectData.crop_size = 64'

1. Agreement: median wall time of ``osc_tf.distribute.any_worker`` (one all-reduce
   of a scalar) between two worker processes on 127.0.0.1 — what multi-worker
   training adds to every step so that a signal stops all workers together.
2. Throughput: images/s of ``train()`` on ``gin/tests/tiny.gin`` (plus
   ``--gin_param``) over the last ``--steps``/2 steps (tracing excluded), for one
   process and for two worker processes on the same global batch.

Both workers share this machine's cores, so (2) measures the overhead of
splitting a batch over processes here, not the speed-up of two machines.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

_ENV = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}


def _params(args, workdir: str) -> list[str]:
    return [
        f"MultiObjectData.data_dir = {args.data_dir!r}",
        f"train.workdir = {workdir!r}",
        f"train.num_steps = {args.steps}",
        f"train.batch_size = {args.batch_size}",
        f"train.log_interval = {args.steps // 2}",
        "train.val_interval = 0",
        "train.viz_interval = 0",
        "train.checkpoint_interval = 0",
        "train.evaluate = False",
        "train.export = False",
        *args.gin_param,
    ]


def _role(args) -> int:
    """One process of the benchmark: optional agreement timing, then train()."""
    import gin

    from osc_tf import config, distribute, training  # noqa: F401  (registers `train`)

    config.parse(["gin/tests/tiny.gin"], _params(args, args.workdir))
    report = {}
    if os.environ.get("TF_CONFIG"):
        strategy = distribute.multi_worker_strategy()
        distribute.barrier(strategy)  # traced and connected
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            distribute.any_worker(strategy, False)
            times.append(time.perf_counter() - start)
        report["agreement_ms"] = 1e3 * float(np.median(times))
    result = gin.get_configurable("train")()
    report["images_per_second"] = result["images_per_second"]
    with open(args.out, "w") as f:
        json.dump(report, f)
    return 0


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _launch(args, role_args: list[str], env: dict) -> subprocess.Popen:
    command = [sys.executable, os.path.abspath(__file__), "--role", *role_args]
    command += [f"--{k}={v}" for k, v in (("steps", args.steps), ("batch_size", args.batch_size))]
    command += [f"--repeats={args.repeats}", f"--data_dir={args.data_dir}"]
    command += [a for p in args.gin_param for a in ("--gin_param", p)]
    return subprocess.Popen(command, env={**os.environ, **_ENV, **env})


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark.py scale", description=__doc__)
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    parser.add_argument("--batch_size", type=int, default=16, help="global batch (images)")
    parser.add_argument("--repeats", type=int, default=200, help="timed agreements")
    parser.add_argument("--gin_param", action="append", default=[], help="extra binding")
    parser.add_argument("--data_dir", help="where the tiny synthetic data is (built if missing)")
    parser.add_argument("--role", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        return _role(args)

    root = tempfile.mkdtemp(prefix="osc_tf_scale_")
    args.data_dir = args.data_dir or os.path.join(root, "data")
    from osc_tf import config
    from osc_tf.factories import build_data

    config.parse(["gin/tests/tiny.gin"], _params(args, root))
    build_data().prepare()  # once, before the workers start
    single = _launch(args, [f"--workdir={root}/one", f"--out={root}/one.json"], {})
    if single.wait() != 0:
        return 1
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        role = [f"--workdir={root}/two", f"--out={root}/two_{i}.json"]
        workers.append(_launch(args, role, {"TF_CONFIG": tf_config}))
    if any(w.wait() != 0 for w in workers):
        return 1
    read = [json.load(open(f"{root}/{name}.json")) for name in ("one", "two_0", "two_1")]
    print(f"global batch {args.batch_size}, last {args.steps // 2} of {args.steps} steps")
    print(f"agreement all-reduce, 2 workers on 127.0.0.1: {read[1]['agreement_ms']:.2f} ms")
    print(f"train images/s, 1 process:  {read[0]['images_per_second']:.1f}")
    print(f"train images/s, 2 workers:  {read[1]['images_per_second']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
