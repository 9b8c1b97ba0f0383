"""Two worker processes on 127.0.0.1 train ``gin/tests/tiny.gin`` with MultiWorkerMirroredStrategy.

Worker 0 reads the cluster from ``TF_CONFIG``; worker 1 from a SLURM environment
(2 tasks on one node, a fake ``scontrol`` on PATH): the run only trains if both
paths describe the same cluster. Each worker runs ``train()`` in its own process
(tests/multi_worker_check.py) and saves its final weights.

"The same global batch": the train pipeline of every worker walks one global
stream of images and keeps every second one (``MultiObjectData.train``), so the
two replicas' batches of a step together are exactly the global batch of a
single process at that step. The reference is therefore the plain single-process
``train()`` on the same configuration, run in this process. Losses are means over
the global batch, so per-step losses agree up to float rounding, and so do the
weights; the two workers' weights are bit-identical.
"""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import gin
import numpy as np
import pytest
import tensorflow as tf

from osc_tf import config, distribute
from osc_tf.factories import build_data
from tests import fake_slurm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT_S = 300


def free_port_pair() -> int:
    """A port p such that p and p + 1 are both free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports")


def worker_envs(tmp_path, port: int) -> list[dict]:
    """Environment of worker 0 (TF_CONFIG) and worker 1 (SLURM task 1, fake scontrol)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLURM_") and k not in ("TF_CONFIG", distribute.PORT_ENV)
    }
    base |= {"PYTHONPATH": ROOT, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    cluster = {"worker": [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]}
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 0}}
    bin_dir = fake_slurm.install(tmp_path / "bin", ["scontrol"])
    slurm = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SCONTROL_LOG": str(tmp_path / "scontrol.log"),
        "FAKE_SLURM_HOSTS": "127.0.0.1",
        "SLURM_JOB_ID": "77",
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "1",
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_STEP_NODELIST": "127.0.0.1",
        "SLURM_STEP_TASKS_PER_NODE": "2",
        distribute.PORT_ENV: str(port),
    }
    return [base | {"TF_CONFIG": json.dumps(tf_config)}, base | slurm]


def start_workers(tmp_path, params: list[str], tag: str) -> list:
    port = free_port_pair()
    procs = []
    for i, env in enumerate(worker_envs(tmp_path, port)):
        log = open(tmp_path / f"{tag}_worker{i}.log", "w")
        args = [sys.executable, os.path.join(ROOT, "tests", "multi_worker_check.py")]
        args += [str(tmp_path / f"{tag}_worker{i}.npz")]
        args += [a for p in params for a in ("--gin_param", p)]
        procs.append((subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=log), log))
    return procs


def wait_workers(procs, tmp_path, tag: str) -> None:
    try:
        for proc, _ in procs:
            proc.wait(timeout=TIMEOUT_S)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    for i, (proc, _) in enumerate(procs):
        with open(tmp_path / f"{tag}_worker{i}.log") as f:
            assert proc.returncode == 0, f.read()[-4000:]


def scalars(workdir: str, split: str) -> dict:
    """TensorBoard scalars of ``workdir/tensorboard/<split>``: tag → step → value."""
    found = {}
    for path in glob.glob(os.path.join(workdir, "tensorboard", split, "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "scalars":
                    scalar = float(tf.make_ndarray(value.tensor))
                    found.setdefault(value.tag, {})[event.step] = scalar
    return found


def weights(path) -> tuple[list, dict]:
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files) if k != "result"], json.loads(str(f["result"]))


def prepare_tiny_data(data_dir: str) -> list[str]:
    params = [f"MultiObjectData.data_dir = {data_dir!r}"]
    config.parse(["gin/tests/tiny.gin"], params)
    build_data().prepare()  # once, before any worker starts
    return params


@pytest.mark.distributed
def test_two_workers_equal_each_other_and_a_single_process(tmp_path):
    params = prepare_tiny_data(str(tmp_path / "data"))
    params += ["train.evaluate = False", "train.export = False", "train.viz_interval = 0"]
    workdir = str(tmp_path / "two_workers")
    procs = start_workers(tmp_path, params + [f"train.workdir = {workdir!r}"], "run")

    reference = str(tmp_path / "one_process")
    config.parse(["gin/tests/tiny.gin"], params + [f"train.workdir = {reference!r}"])
    single = gin.get_configurable("train")()  # the single-process run, meanwhile
    wait_workers(procs, tmp_path, "run")

    (w0, r0), (w1, r1) = (
        weights(tmp_path / "run_worker0.npz"),
        weights(tmp_path / "run_worker1.npz"),
    )
    assert r0["status"] == r1["status"] == "finished" and r0["step"] == r1["step"] == 4
    assert len(w0) == len(w1) > 20
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)  # bit-identical replicas
    checkpoint = tf.train.load_checkpoint(os.path.join(reference, "checkpoints"))
    assert checkpoint.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 4
    for split, steps in (("train", [1, 2, 3, 4]), ("validation", [2, 4])):
        ours, theirs = scalars(workdir, split), scalars(reference, split)
        for tag in ("loss", "loss_global_ctr", "loss_object_ctr_img"):
            assert sorted(ours[tag]) == sorted(theirs[tag]) == steps, (split, tag)
            for step in steps:
                assert ours[tag][step] == pytest.approx(theirs[tag][step], rel=2e-5), (tag, step)
    assert r0["loss"] == pytest.approx(single["loss"], rel=2e-5)
    assert single["loss"] > 0.5  # a real contrastive loss, not a degenerate zero

    # Only the chief wrote the workdir; the other worker's checkpoint copies are gone.
    assert len(glob.glob(os.path.join(workdir, "tensorboard", "train", "events.*"))) == 1
    with open(os.path.join(workdir, "run_info.json")) as f:
        assert len(json.load(f)["starts"]) == 1
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [
        "checkpoint",
        "ckpt-2.data-00000-of-00001",
        "ckpt-2.index",
        "ckpt-4.data-00000-of-00001",
        "ckpt-4.index",
    ]
    with open(tmp_path / "scontrol.log") as f:
        assert f.read().strip() == "show hostnames 127.0.0.1"  # worker 1 used the SLURM path


@pytest.mark.slow
@pytest.mark.distributed
def test_a_signal_to_one_worker_stops_both_and_the_run_resumes(tmp_path):
    """SIGTERM to the non-chief only: both stop at the same checkpoint; a relaunch resumes it,
    finishes, and the chief alone evaluates and exports."""
    params = prepare_tiny_data(str(tmp_path / "data"))
    workdir = str(tmp_path / "two_workers")
    params += ["train.num_steps = 60", "train.checkpoint_interval = 2", "train.val_interval = 0"]
    params += ["train.viz_interval = 0", f"train.workdir = {workdir!r}"]
    procs = start_workers(tmp_path, params, "first")
    index = os.path.join(workdir, "checkpoints", "checkpoint")
    for _ in range(TIMEOUT_S * 10):
        if os.path.exists(index) or procs[1][0].poll() is not None:
            break
        time.sleep(0.1)
    procs[1][0].send_signal(signal.SIGTERM)
    wait_workers(procs, tmp_path, "first")
    (w0, r0), (w1, r1) = (
        weights(tmp_path / "first_worker0.npz"),
        weights(tmp_path / "first_worker1.npz"),
    )
    assert r0["status"] == r1["status"] == "preempted"
    assert r0["signal"] is None and r1["signal"] == "SIGTERM"
    stopped = r0["step"]
    assert r1["step"] == stopped and 2 <= stopped < 60
    assert tf.train.latest_checkpoint(os.path.dirname(index)).endswith(f"ckpt-{stopped}")

    procs = start_workers(tmp_path, params, "second")
    wait_workers(procs, tmp_path, "second")
    (w0, r0), (w1, r1) = (
        weights(tmp_path / "second_worker0.npz"),
        weights(tmp_path / "second_worker1.npz"),
    )
    assert r0["status"] == r1["status"] == "finished" and r0["step"] == 60
    for a, b in zip(w0, w1, strict=True):
        np.testing.assert_array_equal(a, b)
    with open(os.path.join(workdir, "run_info.json")) as f:
        starts = [s["start_step"] for s in json.load(f)["starts"]]
    assert starts == [0, stopped]
    assert os.path.isdir(os.path.join(workdir, "export"))
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f)["step"] == 60
