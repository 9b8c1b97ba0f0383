"""Launching a sweep's runs through submitit, and each run's status file.

Executors:

- ``debug``: in this process, one run after the other (tests, debugging);
- ``local``: one subprocess per run, at most ``max_parallel`` at a time; with
  ``gpus_per_node`` each run gets its own GPUs;
- ``slurm``: one job array (``--array=0-N%max_parallel``), ``nodes`` machines per run
  with one task each (several nodes train with ``MultiWorkerMirroredStrategy``
  built from the SLURM environment, see ``osc_tf.distribute``).

Every run's workdir holds ``sweep_run.json`` (its overrides, gin files and
bindings) and ``sweep_status.json``: ``status`` is ``submitted``, ``running``,
``finished``, ``preempted`` or ``failed`` (with ``error``, the exception's first
line, and ``traceback``), plus ``time`` (ISO), ``updated`` and ``started`` (Unix
times of this record and of the job's start), ``host``, ``pid``, ``job_id``,
``executor``, ``step`` and ``result`` (train's returned metrics).

Re-running a sweep skips finished runs (``train_result.json`` says finished at the
configured ``train.num_steps``) and runs that are still active (submitted or
running: a live process on this machine, or a SLURM job, unless
``relaunch_active``); every other run is launched again and resumes from its
newest checkpoint. A SLURM job warned of its time limit (SIGUSR2) checkpoints,
and submitit requeues it; it resumes from that checkpoint.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import signal
import socket
import time
import traceback
from collections.abc import Callable, Sequence

import gin
import submitit

from osc_tf import config, training  # noqa: F401  (training registers `train`)
from osc_tf.sweep.grid import Run

log = logging.getLogger("osc_tf")

RUN_FILE = "sweep_run.json"
STATUS_FILE = "sweep_status.json"
EXECUTORS = ("debug", "local", "slurm")
ACTIVE = ("submitted", "running")
SUBMITIT_DIR = ".submitit"


def _write_json(path: str, payload: dict) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(payload, f, indent=2, default=str)
    os.replace(path + ".tmp", path)


def read_json(path: str) -> dict | None:
    """The JSON object in ``path``, or None when it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_status(workdir: str, status: str, **fields) -> dict:
    """Writes ``sweep_status.json`` atomically; returns what it wrote."""
    payload = {
        "status": status,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "updated": time.time(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        **fields,
    }
    _write_json(os.path.join(workdir, STATUS_FILE), payload)
    return payload


def _rank() -> int:
    """This task's rank in a multi-task job (0 outside one)."""
    try:
        return submitit.JobEnvironment().global_rank
    except RuntimeError:  # not inside a submitit job
        return int(os.environ.get("SLURM_PROCID", 0))


def _job_id() -> str | None:
    try:
        return submitit.JobEnvironment().job_id
    except (RuntimeError, KeyError):
        return None


class SweepRun(submitit.helpers.Checkpointable):
    """The job of one run: parse its configuration, call ``train``, record the status.

    Only rank 0 of a multi-node job writes the status file. After a SIGUSR2
    (SLURM's time-limit warning, or the local executor's) has stopped training at
    a checkpoint, the signal is raised again for submitit, which calls
    ``checkpoint`` (this same run) and requeues the job.

    Args:
        run: the run.
        executor: the executor's name (recorded in the status).
        raise_errors: re-raise a failure after recording it (the job then fails);
            False returns ``{"status": "failed", "error": ...}`` instead.
    """

    def __init__(self, run: Run, executor: str, raise_errors: bool = True):
        self.run = run
        self.executor = executor
        self.raise_errors = raise_errors

    def __call__(self) -> dict:
        chief = _rank() == 0
        fields = {"executor": self.executor, "job_id": _job_id(), "started": time.time()}
        if chief:
            write_status(self.run.workdir, "running", **fields)
        try:
            config.parse(self.run.gin_files, self.run.gin_params)
            result = gin.get_configurable("train")()
        except Exception as e:
            error = f"{type(e).__name__}: {e}".strip().splitlines()[0]
            if chief:
                write_status(
                    self.run.workdir,
                    "failed",
                    error=error,
                    traceback=traceback.format_exc(),
                    **fields,
                )
            if self.raise_errors:
                raise
            return {"status": "failed", "error": error}
        if chief:
            write_status(
                self.run.workdir, result["status"], step=result["step"], result=result, **fields
            )
        requeue = signal.Signals["SIG" + submitit.JobEnvironment.USR_SIG]
        cluster_job = os.environ.get("SUBMITIT_EXECUTOR") in ("slurm", "local")
        if result["status"] == "preempted" and result.get("signal") == requeue.name:
            if cluster_job:
                signal.raise_signal(requeue)  # submitit: checkpoint() → requeue → exit
        return result


@dataclasses.dataclass
class Resources:
    """What each run asks for.

    Attributes:
        gpus_per_node: GPUs per machine (local: per run).
        nodes: machines per run (SLURM only; more than 1 trains multi-worker).
        time: time limit, ``HH:MM:SS``, ``MM`` or ``D-HH:MM:SS`` (None: 3 days on
            SLURM, none locally).
        cpus_per_task, mem, partition: SLURM's ``--cpus-per-task``, ``--mem``
            (e.g. ``64G``), ``--partition``.
        max_requeues: times a run may be requeued after reaching its time limit.
        signal_delay_s: seconds between the SIGUSR2 warning and the time limit.
    """

    gpus_per_node: int = 0
    nodes: int = 1
    time: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None
    partition: str | None = None
    max_requeues: int = 20
    signal_delay_s: int = 120


def minutes(text: str) -> int:
    """SLURM time formats → minutes: ``MM``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM:SS``."""
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    if len(parts) == 1:
        hms = (parts[0], 0, 0) if days else (0, parts[0], 0)
    elif len(parts) == 2:
        hms = (parts[0], parts[1], 0) if days else (0, parts[0], parts[1])
    else:
        hms = tuple(parts[:3])
    total = (int(days or 0) * 24 + hms[0]) * 60 + hms[1] + (1 if hms[2] else 0)
    if total < 1:
        raise ValueError(f"time limit must be at least a minute, got {text!r}")
    return total


def _alive(status: dict) -> bool:
    """Whether a submitted/running status may belong to a live job."""
    if status.get("executor") == "slurm" or status.get("host") != socket.gethostname():
        return True  # cannot tell from here: ask the scheduler, or pass relaunch_active
    pid = int(status.get("pid") or 0)
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_state(run: Run, num_steps: int) -> str:
    """``finished``, ``active`` or ``todo`` (see the module docstring)."""
    result = read_json(os.path.join(run.workdir, "train_result.json"))
    if result and result.get("status") == "finished" and result.get("step", 0) >= num_steps:
        return "finished"
    status = read_json(os.path.join(run.workdir, STATUS_FILE))
    if status and status["status"] in ACTIVE and _alive(status):
        return "active"
    return "todo"


def check_config(run: Run) -> int:
    """Parses the run's configuration (to fail before launching anything); its step budget.

    Raises:
        config.ConfigError: naming the run.
    """
    try:
        config.parse(run.gin_files, run.gin_params)
    except config.ConfigError as e:
        raise config.ConfigError(f"run {run.name}: {e}") from e
    try:
        return int(gin.query_parameter("train.num_steps"))
    except ValueError:
        return 10_000  # train's default


def launch(
    runs: Sequence[Run],
    executor: str = "local",
    max_parallel: int = 1,
    resources: Resources | None = None,
    relaunch_active: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, str]:
    """Launches every run that is not finished or active.

    Args:
        runs: from ``osc_tf.sweep.plan``; they must share one sweep directory.
        executor: ``debug`` | ``local`` | ``slurm``.
        max_parallel: runs at the same time (SLURM: the job array's ``%`` limit).
        resources: per-run resources (default ``Resources()``).
        relaunch_active: also launch runs whose status says submitted/running.
        say: where progress lines go.

    Returns:
        Run name → status: for debug and local the final status of every run
        (``finished``, ``preempted``, ``failed``; ``active`` for skipped active
        runs); for slurm ``submitted`` for the launched ones.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
    resources = resources or Resources()
    states, todo = {}, []
    for run in runs:
        num_steps = check_config(run)
        os.makedirs(run.workdir, exist_ok=True)
        _record(run)
        states[run.name] = run_state(run, num_steps)
        if states[run.name] == "todo" or (relaunch_active and states[run.name] == "active"):
            todo.append(run)
        else:
            say(f"skip {run.name}: {states[run.name]}")
    if todo:
        folder = os.path.join(os.path.dirname(todo[0].workdir), SUBMITIT_DIR)
        launcher = {"debug": _debug, "local": _local, "slurm": _slurm}[executor]
        states |= launcher(todo, folder, max_parallel, resources, say)
    return states


def _record(run: Run) -> None:
    payload = dataclasses.asdict(run)
    previous = read_json(os.path.join(run.workdir, RUN_FILE))
    if previous and (previous["gin_files"], previous["gin_params"]) != (
        list(run.gin_files),
        list(run.gin_params),
    ):
        log.warning("%s: configuration differs from its previous launch", run.name)
    _write_json(os.path.join(run.workdir, RUN_FILE), payload)


def _debug(runs, folder, max_parallel, resources, say) -> dict[str, str]:
    executor = submitit.DebugExecutor(folder=folder)
    states = {}
    for run in runs:
        say(f"run {run.name}")
        states[run.name] = executor.submit(SweepRun(run, "debug", raise_errors=False)).result()[
            "status"
        ]
        say(f"{states[run.name]} {run.name}")
    return states


def _local(runs, folder, max_parallel, resources, say) -> dict[str, str]:
    executor = submitit.LocalExecutor(folder=folder, max_num_timeout=resources.max_requeues)
    limit = minutes(resources.time) if resources.time else 365 * 24 * 60
    executor.update_parameters(timeout_min=limit, signal_delay_s=resources.signal_delay_s)
    slots: list[tuple[int, ...]] = [()] * max_parallel
    if resources.gpus_per_node:
        import tensorflow as tf

        ids = list(range(len(tf.config.list_physical_devices("GPU"))))
        if os.environ.get("CUDA_VISIBLE_DEVICES"):  # the CUDA ids this process may use
            ids = [int(i) for i in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if i.strip()]
        g = resources.gpus_per_node
        slots = [tuple(ids[i : i + g]) for i in range(0, len(ids) - g + 1, g)][:max_parallel]
        if not slots:
            raise RuntimeError(f"gpus_per_node={g} but this machine has {len(ids)} GPUs")
    queue, active, states = collections.deque(runs), {}, {}
    free = list(range(len(slots)))  # indices of unused slots
    while queue or active:
        while queue and free:
            run, index = queue.popleft(), free.pop(0)
            if slots[index]:
                executor.update_parameters(
                    gpus_per_node=len(slots[index]), visible_gpus=slots[index]
                )
            job = executor.submit(SweepRun(run, "local"))
            pid = int(job.job_id)  # the job's controller process
            write_status(run.workdir, "submitted", executor="local", job_id=job.job_id, pid=pid)
            say(f"started {run.name} (process {job.job_id})")
            active[run.name] = (run, job, index)
        time.sleep(0.2)
        for name, (run, job, index) in list(active.items()):
            if job.done():
                del active[name]
                free.append(index)
                states[name] = _outcome(run, job)
                say(f"{states[name]} {name}")
    return states


def _outcome(run: Run, job) -> str:
    """The status a finished local job left, recording a failure it could not record."""
    try:
        job.result()
    except Exception as e:  # the run recorded its own error unless the process died
        status = read_json(os.path.join(run.workdir, STATUS_FILE)) or {}
        if status.get("status") != "failed":
            lines = [line for line in str(e).splitlines() if line.strip()]
            write_status(run.workdir, "failed", error=lines[-1] if lines else repr(e))
    status = read_json(os.path.join(run.workdir, STATUS_FILE)) or {}
    return status.get("status", "failed")


def _slurm(runs, folder, max_parallel, resources, say) -> dict[str, str]:
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=resources.max_requeues)
    params = {
        "job_name": "osc_tf_sweep",
        "time": minutes(resources.time or "3-00:00:00"),
        "nodes": resources.nodes,
        "ntasks_per_node": 1,
        "array_parallelism": max_parallel,
        "signal_delay_s": resources.signal_delay_s,
    }
    optional = {
        "partition": resources.partition,
        "gpus_per_node": resources.gpus_per_node or None,
        "cpus_per_task": resources.cpus_per_task,
        "mem": resources.mem,
    }
    executor.update_parameters(**params, **{k: v for k, v in optional.items() if v is not None})
    with executor.batch():
        jobs = [executor.submit(SweepRun(run, "slurm")) for run in runs]
    states = {}
    for run, job in zip(runs, jobs, strict=True):
        write_status(run.workdir, "submitted", executor="slurm", job_id=job.job_id)
        states[run.name] = "submitted"
    say(f"submitted {len(jobs)} runs as SLURM job array {jobs[0].job_id.split('_')[0]}")
    return states
