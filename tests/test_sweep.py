"""Sweeps: grid expansion and names, the summary, and launching (debug, local, SLURM).

Training runs use ``gin/tests/tiny.gin`` on a tiny synthetic dataset built once per
module. SLURM is faked: ``sbatch`` records the submitted script, ``srun`` only
exists, ``scontrol`` logs requeues (tests/fake_slurm.py).
"""

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time

import gin
import pytest
import submitit

from osc_tf import config, sweep
from osc_tf.factories import build_data
from osc_tf.sweep.launch import RUN_FILE, STATUS_FILE, read_json
from tests import fake_slurm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "osc_tf", "gin", "tests", "tiny.gin")
QUICK = ["train.evaluate = False", "train.export = False", "train.viz_interval = 0"]


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory) -> list[str]:
    """Bindings that point tiny.gin at a tiny synthetic dataset, built here once."""
    params = [f"MultiObjectData.data_dir = {str(tmp_path_factory.mktemp('tfds'))!r}"]
    config.parse([TINY], params)
    build_data().prepare()
    return params


def sweep_script():
    spec = importlib.util.spec_from_file_location("sweep_script", f"{ROOT}/scripts/sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def starts(workdir) -> list[int]:
    with open(os.path.join(workdir, "run_info.json")) as f:
        return [s["start_step"] for s in json.load(f)["starts"]]


def test_grid_values_split_at_top_level_commas():
    assert sweep.split_values("2, 4,6") == ["2", "4", "6"]
    assert sweep.split_values("(48, 64),(96, 128)") == ["(48, 64)", "(96, 128)"]
    assert sweep.split_values("'a,b',\"c\"") == ["'a,b'", '"c"']
    assert sweep.split_values("{'train': 64},None") == ["{'train': 64}", "None"]
    for bad in ("(1, 2", "'a", "1,,2"):
        with pytest.raises(ValueError):
            sweep.split_values(bad)
    for bad in ("ViT.num_layers", "=1,2", "x=a.gin,2", "ViT.num_layers=2,2"):
        with pytest.raises(ValueError):
            sweep.parse_axis(bad)


def test_plan_is_the_product_in_parse_order_with_stable_names(tmp_path):
    grids = [
        "losses=gin/losses/more_objects.gin,gin/losses/more_global.gin",
        "ViT.num_layers=1,2",
        "ViT.pooling='avg','cls'",
    ]
    runs = sweep.plan([TINY], ["train.seed = 3"], grids, str(tmp_path))
    assert len(runs) == 8 and [r.index for r in runs] == list(range(8))
    assert [r.name for r in runs[:3]] == [
        "losses=more_objects,ViT.num_layers=1,ViT.pooling=avg",
        "losses=more_objects,ViT.num_layers=1,ViT.pooling=cls",
        "losses=more_objects,ViT.num_layers=2,ViT.pooling=avg",
    ]
    assert runs[-1].name == "losses=more_global,ViT.num_layers=2,ViT.pooling=cls"
    first = runs[0]
    assert first.workdir == os.path.join(str(tmp_path), first.name)
    assert first.gin_files == (
        TINY,
        os.path.join(ROOT, "osc_tf", "gin", "losses", "more_objects.gin"),
    )
    assert first.gin_params == (
        "train.seed = 3",
        "ViT.num_layers = 1",
        "ViT.pooling = 'avg'",
        f"train.workdir = {first.workdir!r}",
    )
    assert first.overrides == {
        "losses": "gin/losses/more_objects.gin",
        "ViT.num_layers": "1",
        "ViT.pooling": "'avg'",
    }
    config.parse(runs[-1].gin_files, runs[-1].gin_params)
    assert (
        gin.query_parameter("ViT.num_layers") == 2 and gin.query_parameter("ViT.pooling") == "cls"
    )
    assert gin.query_parameter("Objective.object_weight") == 0.05  # more_global.gin
    assert gin.query_parameter("train.workdir") == runs[-1].workdir
    again = sweep.plan([TINY], ["train.seed = 3"], grids, str(tmp_path))
    assert again == runs  # re-running a sweep finds the same runs
    with pytest.raises(ValueError, match="share the workdir name 'x=a_b'"):
        sweep.plan([TINY], [], ["x='a b','a_b'"], str(tmp_path))
    with pytest.raises(ValueError, match="same key"):
        sweep.plan([TINY], [], ["x=1,2", "x=3"], str(tmp_path))


def test_slurm_time_limits_in_minutes():
    assert sweep.minutes("01:30:00") == 90
    assert sweep.minutes("45") == 45
    assert sweep.minutes("1:30") == 2  # MM:SS, rounded up
    assert sweep.minutes("2-00:00:00") == 2880
    assert sweep.minutes("1-12") == 36 * 60
    with pytest.raises(ValueError):
        sweep.minutes("0")


def write(path, payload) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f)


def test_summary_table_and_csv_from_run_files(tmp_path):
    def run(name, index, overrides, status=None, result=None, metrics=None):
        folder = tmp_path / name
        write(folder / RUN_FILE, {"name": name, "index": index, "overrides": overrides})
        if status:
            write(folder / STATUS_FILE, status)
        if result:
            write(folder / "train_result.json", result)
        if metrics:
            write(folder / "metrics.json", {"trained": metrics, "init": {}})

    final = {"loss": 1.25, "loss_global_ctr": 0.5, "loss_object_ctr_img": 0.75}
    trained = {
        "segmentation/fg_ari": 0.5,
        "segmentation/iou": 0.25,
        "vqa_slots/ap": 0.125,
        "vqa_global/ap": 0.0625,
        "segmentation/mbo": 0.3,
    }
    run("d=2", 1, {"d": "2"}, {"status": "failed", "error": "OOM: out of memory"})
    run("d=1", 0, {"d": "1"}, {"status": "finished", "step": 10}, {**final, "step": 10}, trained)
    run("d=3", 2, {"d": "3"}, {"status": "preempted", "step": 6, "result": {"loss": 2.0}})
    os.makedirs(tmp_path / ".submitit")  # not a run
    rows = sweep.summarize(str(tmp_path))
    columns = ["name", "d", "status", "step", "loss", "loss_global_ctr", "loss_object_ctr_img"]
    columns += ["fg_ari", "mbo", "iou", "vqa_slots_ap", "vqa_global_ap", "error"]
    assert [list(r) for r in rows] == [columns] * 3
    assert [r["name"] for r in rows] == ["d=1", "d=2", "d=3"]  # sweep order
    values = ["d=1", "1", "finished", 10, 1.25, 0.5, 0.75, 0.5, 0.3, 0.25, 0.125, 0.0625, None]
    assert rows[0] == dict(zip(columns, values, strict=True))
    assert rows[1]["status"] == "failed" and rows[1]["error"] == "OOM: out of memory"
    assert rows[1]["loss"] is None and rows[1]["fg_ari"] is None
    assert (rows[2]["status"], rows[2]["step"], rows[2]["loss"]) == ("preempted", 6, 2.0)
    with open(tmp_path / "summary.csv") as f:
        table = list(csv.reader(f))
    assert table[0] == columns and table[1][4] == "1.25" and table[2][-1] == "OOM: out of memory"
    lines = sweep.format_table(rows).splitlines()
    assert lines[0].split() == columns and lines[1].split()[:5] == [
        "d=1",
        "1",
        "finished",
        "10",
        "1.25",
    ]
    assert lines[2].endswith("OOM: out of memory")


def test_debug_sweep_resumes_a_sigterm_interrupted_run_then_skips_it_once_finished(
    tiny_params, tmp_path
):
    # checkpoints and logs every 50 steps (tiny.gin's every 2 and every step cost
    # most of the 300 steps' time)
    params = tiny_params + QUICK
    params += [
        "train.val_interval = 0",
        "train.checkpoint_interval = 50",
        "train.log_interval = 50",
    ]
    runs = sweep.plan([TINY], params, ["train.num_steps=300"], str(tmp_path))
    workdir = runs[0].workdir
    index = os.path.join(workdir, "checkpoints", "checkpoint")

    def interrupt():  # SIGTERM once the run has written its first checkpoint
        deadline = time.monotonic() + 300
        while not os.path.exists(index) and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    late, lines = [], []
    previous = signal.signal(signal.SIGTERM, lambda *_: late.append(True))  # never kill pytest
    try:
        thread = threading.Thread(target=interrupt, daemon=True)
        thread.start()
        first = sweep.launch(runs, executor="debug", say=lines.append)
        thread.join(timeout=60)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert first == {"train.num_steps=300": "preempted"} and not late
    status = read_json(os.path.join(workdir, STATUS_FILE))
    stopped = status["step"]
    assert 2 <= stopped < 300 and status["result"]["signal"] == "SIGTERM"
    assert status["executor"] == "debug" and status["pid"] == os.getpid()
    assert read_json(os.path.join(workdir, RUN_FILE))["overrides"] == {"train.num_steps": "300"}

    assert sweep.launch(runs, executor="debug", say=lines.append) == first | {
        "train.num_steps=300": "finished"
    }
    assert starts(workdir) == [0, stopped]  # resumed from the checkpoint of the signal
    result = read_json(os.path.join(workdir, "train_result.json"))
    assert result["status"] == "finished" and result["step"] == 300
    assert sweep.launch(runs, executor="debug", say=lines.append) == {
        "train.num_steps=300": "finished"
    }
    assert lines[-1] == "skip train.num_steps=300: finished" and starts(workdir) == [0, stopped]


def test_local_sweep_runs_at_most_max_parallel_subprocesses_and_records_failures(
    tiny_params, tmp_path, capsys
):
    main = sweep_script().main
    args = ["--gin_file", TINY, "--sweep_dir", str(tmp_path), "--executor", "local"]
    args += [a for p in tiny_params + QUICK for a in ("--gin_param", p)]
    args += ["--grid", "train.batch_size=4,0,-1", "--max_parallel", "2"]
    assert main(args) == 1  # some runs failed
    names = ["train.batch_size=4", "train.batch_size=0", "train.batch_size=-1"]
    good, bad, worse = (read_json(str(tmp_path / n / STATUS_FILE)) for n in names)
    assert (good["status"], bad["status"], worse["status"]) == ("finished", "failed", "failed")
    assert {good["executor"], bad["executor"], worse["executor"]} == {"local"}
    assert len({os.getpid(), good["pid"], bad["pid"], worse["pid"]}) == 4  # own processes
    assert bad["started"] < good["updated"]  # the first two ran side by side
    assert worse["started"] >= min(good["updated"], bad["updated"])  # the third waited
    assert bad["error"] == "ValueError: train.batch_size must be a positive integer, got 0"

    capsys.readouterr()
    assert main(["--summarize", str(tmp_path)]) == 0
    table = capsys.readouterr().out.splitlines()
    final = read_json(str(tmp_path / names[0] / "train_result.json"))
    assert table[1].split()[:5] == [names[0], "4", "finished", "4", f"{final['loss']:.4g}"]
    assert table[2].split()[:3] == [names[1], "0", "failed"]
    assert table[2].endswith(bad["error"]) and table[3].endswith(worse["error"])


def test_seed_summary_groups_runs_that_differ_only_in_the_seed(tmp_path, capsys):
    def run(index, weight, seed, status="finished", mbo=None, dec_mbo=None):
        name = f"w={weight},seed={seed}"
        folder = tmp_path / name
        overrides = {"Objective.reconstruction_weight": weight, "train.seed": seed}
        write(folder / RUN_FILE, {"name": name, "index": index, "overrides": overrides})
        write(folder / STATUS_FILE, {"status": status, "step": 10})
        trained = {"segmentation/mbo": mbo, "segmentation_decoder/mbo": dec_mbo}
        if mbo is not None:
            write(folder / "metrics.json", {"trained": trained, "init": {}})
            write(folder / "train_result.json", {"loss": mbo + 1.0, "step": 10})

    run(0, "5", "0", mbo=0.25, dec_mbo=0.5)
    run(1, "5", "1", mbo=0.75, dec_mbo=0.25)
    run(2, "50", "0", mbo=0.5, dec_mbo=0.125)
    run(3, "50", "1", status="failed")
    rows = sweep.summarize(str(tmp_path))
    assert "dec_mbo" in rows[0] and "dec_iou" not in rows[0]  # the columns some run has
    groups = sweep.summarize_seeds(rows)
    assert [g["Objective.reconstruction_weight"] for g in groups] == ["5", "50"]
    first, second = groups
    assert (first["runs"], first["seeds"], second["runs"], second["seeds"]) == (
        "2/2",
        "0,1",
        "1/2",
        "0",
    )
    assert first["mbo"] == 0.5 and first["mbo_std"] == pytest.approx(0.5**0.5 / 2)
    assert first["dec_mbo"] == 0.375 and first["dec_mbo_std"] == pytest.approx(0.125**0.5 / 2)
    assert first["loss"] == 1.5 and first["fg_ari"] is None
    assert second["mbo"] == 0.5 and second["mbo_std"] is None  # one finished run
    table = sweep.format_seed_table(groups).splitlines()
    assert table[1].split()[:5] == ["5", "2/2", "0,1", "1.5", "±"]
    assert "0.5 ± 0.35" in table[1] and "0.375 ± 0.18" in table[1]
    assert sweep.summarize_seeds([{"name": "a", "d": "1", "status": "finished"}]) == []

    assert sweep_script().main(["--summarize", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mean ± std over train.seed" in out and "0.375 ± 0.18" in out
    with open(tmp_path / "summary_seeds.csv") as f:
        assert next(csv.reader(f))[:3] == ["Objective.reconstruction_weight", "runs", "seeds"]


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch):
    bin_dir = fake_slurm.install(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    os.makedirs(tmp_path / "sbatch")
    monkeypatch.setenv("FAKE_SBATCH_DIR", str(tmp_path / "sbatch"))
    monkeypatch.setenv("FAKE_SBATCH_JOB_ID", "4242")
    monkeypatch.setenv("FAKE_SCONTROL_LOG", str(tmp_path / "scontrol.log"))
    return tmp_path


def test_slurm_sweep_submits_one_job_array_and_skips_active_runs(tiny_params, fake_cluster):
    sweep_dir = str(fake_cluster / "sweep")
    runs = sweep.plan([TINY], tiny_params, ["ViT.num_layers=1,2", "train.seed=0,1"], sweep_dir)
    resources = sweep.Resources(
        gpus_per_node=2, nodes=2, time="01:30:00", cpus_per_task=8, mem="16G", partition="gpu"
    )
    states = sweep.launch(runs, "slurm", max_parallel=3, resources=resources, say=print)
    assert states == {run.name: "submitted" for run in runs}
    assert os.listdir(fake_cluster / "sbatch") == ["submission_0.sh"]
    with open(fake_cluster / "sbatch" / "submission_0.sh") as f:
        script = f.read().splitlines()
    for line in (
        "#SBATCH --array=0-3%3",
        "#SBATCH --partition=gpu",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=16G",
        "#SBATCH --time=90",
        "#SBATCH --signal=USR2@120",
        "export SUBMITIT_EXECUTOR=slurm",
    ):
        assert line in script
    folder = os.path.join(sweep_dir, ".submitit")
    for i, run in enumerate(runs):
        submission = submitit.core.utils.DelayedSubmission.load(
            os.path.join(folder, f"4242_{i}_submitted.pkl")
        )
        assert submission.function.run == run and submission.function.executor == "slurm"
        status = read_json(os.path.join(run.workdir, STATUS_FILE))
        assert (status["status"], status["job_id"]) == ("submitted", f"4242_{i}")

    again = sweep.launch(runs, "slurm", resources=resources, say=print)
    assert again == {run.name: "active" for run in runs}
    assert len(os.listdir(fake_cluster / "sbatch")) == 1  # nothing submitted twice
    forced = sweep.launch(runs[:1], "slurm", resources=resources, relaunch_active=True)
    assert forced == {runs[0].name: "submitted"}
    with open(fake_cluster / "sbatch" / "submission_1.sh") as f:
        assert "#SBATCH --array" not in f.read()  # one run: a plain job


@pytest.mark.slow
def test_slurm_array_task_checkpoints_at_its_time_limit_is_requeued_and_resumes(
    tiny_params, fake_cluster
):
    """Runs array task 0 the way SLURM would; SIGUSR2 (the time-limit warning) makes it
    checkpoint and call ``scontrol requeue``; running it again resumes and finishes."""
    sweep_dir = str(fake_cluster / "sweep")
    params = tiny_params + QUICK + ["train.val_interval = 0"]
    runs = sweep.plan([TINY], params, ["train.num_steps=40"], sweep_dir)
    sweep.launch(runs, "slurm", resources=sweep.Resources(time="10"), say=print)
    env = dict(os.environ, PYTHONPATH=ROOT, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env |= {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0"}
    env |= {"SLURM_NTASKS": "1", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}
    env |= {"SLURM_JOB_NUM_NODES": "1"}
    command = [sys.executable, "-u", "-m", "submitit.core._submit"]
    command.append(os.path.join(sweep_dir, ".submitit"))
    index = os.path.join(runs[0].workdir, "checkpoints", "checkpoint")
    log = open(fake_cluster / "task.log", "w")
    task = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 300
        while not os.path.exists(index) and task.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        task.send_signal(signal.SIGUSR2)
        task.wait(timeout=300)
    finally:
        if task.poll() is None:
            task.kill()
        log.close()
    status = read_json(os.path.join(runs[0].workdir, STATUS_FILE))
    assert status["status"] == "preempted" and status["job_id"] == "4242"
    stopped = status["step"]
    assert 2 <= stopped < 40
    with open(fake_cluster / "scontrol.log") as f:
        assert f.read().split() == ["requeue", "4242"]

    subprocess.run(command, env=env, timeout=300, check=True, capture_output=True)  # requeued
    result = read_json(os.path.join(runs[0].workdir, "train_result.json"))
    assert result["status"] == "finished" and result["step"] == 40
    assert starts(runs[0].workdir) == [0, stopped]
