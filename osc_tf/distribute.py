"""Choosing the tf.distribute strategy from the environment.

Order (``kind="auto"``):

1. ``TF_CONFIG`` is set → ``MultiWorkerMirroredStrategy`` (one process per machine).
2. The process is one task of a SLURM job step with several tasks (``srun -N 2
   --ntasks-per-node 1``, or a multi-node submitit job) → ``MultiWorkerMirroredStrategy``
   on the cluster read from the SLURM environment (``slurm_cluster_resolver``).
3. More than one GPU is visible → ``MirroredStrategy`` over all of them.
4. Otherwise the default strategy (one device).

``kind="multi_worker"`` requires case 1 or 2. ``kind="mirrored"`` forces
``MirroredStrategy`` over every visible GPU, or, without GPUs, over ``cpu_devices``
logical CPU devices (tests and debugging of the multi-replica path on a laptop).
Each worker of a multi-worker run uses all its local GPUs. The training loop is the
same code path for all of them: ``strategy.run(model.train_step, ...)``;
``any_worker`` and ``barrier`` are the two extra agreements a multi-worker loop
needs (stop together on a signal; wait for the chief's evaluation and export).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess

import tensorflow as tf

KINDS = ("auto", "default", "mirrored", "multi_worker")

#: Overrides the first port of a SLURM-derived cluster (default: from the job id).
PORT_ENV = "OSC_TF_PORT"


def split_cpu(num_devices: int) -> None:
    """Splits the physical CPU into ``num_devices`` logical devices.

    Must run before TensorFlow initialises its devices (before any op runs).
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as e:
        raise RuntimeError(
            f"cannot split the CPU into {num_devices} devices: TensorFlow is already "
            "initialised in this process; set the strategy before any TensorFlow op runs"
        ) from e


def select_strategy(kind: str = "auto", cpu_devices: int = 2) -> tf.distribute.Strategy:
    """Returns the strategy to train with (see the module docstring).

    Args:
        kind: one of ``"auto"``, ``"default"``, ``"mirrored"``, ``"multi_worker"``.
        cpu_devices: logical CPU devices for ``"mirrored"`` on a machine without GPUs.
    """
    if kind not in KINDS:
        raise ValueError(f"strategy kind must be one of {KINDS}, got {kind!r}")
    multi = os.environ.get("TF_CONFIG") or in_multi_task_slurm_step()
    if kind == "multi_worker" or (kind == "auto" and multi):
        return multi_worker_strategy()
    if kind == "default":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_physical_devices("GPU")
    if kind == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy()
        split_cpu(cpu_devices)
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices=devices, cross_device_ops=tf.distribute.ReductionToOneDevice()
        )
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def multi_worker_strategy() -> tf.distribute.Strategy:
    """``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``, else from the SLURM step."""
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as e:
            raise RuntimeError(f"TF_CONFIG is not valid JSON: {e}") from e
        return tf.distribute.MultiWorkerMirroredStrategy()
    if in_multi_task_slurm_step():
        resolver = slurm_cluster_resolver()
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    raise RuntimeError(
        "multi-worker training needs TF_CONFIG to describe the cluster, or a SLURM job "
        "step with several tasks (srun --nodes N --ntasks-per-node 1 ...)"
    )


def in_multi_task_slurm_step() -> bool:
    """True inside an ``srun`` job step that runs more than one task (one per worker).

    Only ``srun`` sets ``SLURM_STEP_NUM_TASKS``: a batch script of a job with
    several tasks (``SLURM_NTASKS > 1``) that runs training without ``srun`` is one
    process, not a worker.
    """
    tasks = os.environ.get("SLURM_STEP_NUM_TASKS")
    return "SLURM_PROCID" in os.environ and tasks is not None and int(tasks) > 1


def _expand_counts(text: str) -> list[int]:
    """SLURM's tasks-per-node syntax, e.g. ``'2(x3),1'`` → ``[2, 2, 2, 1]``."""
    counts = []
    for part in text.split(","):
        count, _, repeat = part.partition("(x")
        counts += [int(count)] * (int(repeat.rstrip(")")) if repeat else 1)
    return counts


def slurm_cluster_resolver(port: int | None = None):
    """The cluster of the current SLURM job step, ``worker`` ``i`` = task ``SLURM_PROCID=i``.

    Hosts come from ``scontrol show hostnames`` in SLURM's node order, which is
    the order in which SLURM numbers the tasks (TensorFlow's
    ``SlurmClusterResolver`` sorts host names as strings, so on ``node[9-10]`` it
    gives rank 0 the address of ``node10``). The task with local id ``l`` on a
    node listens on ``port + l``; ``port`` defaults to ``$OSC_TF_PORT``, else
    ``20000 + job id mod 20000`` (the same for every task of the job, different
    for jobs sharing a node). Each task keeps the GPUs SLURM gave it.
    """
    env = os.environ
    nodelist = env.get("SLURM_STEP_NODELIST") or env["SLURM_JOB_NODELIST"]
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    per_node = env.get("SLURM_STEP_TASKS_PER_NODE") or env["SLURM_TASKS_PER_NODE"]
    counts = _expand_counts(per_node)
    if len(counts) != len(hosts):
        raise RuntimeError(f"SLURM lists {len(hosts)} hosts but tasks per node {per_node!r}")
    if port is None:
        port = int(env.get(PORT_ENV) or 20000 + int(env["SLURM_JOB_ID"]) % 20000)
    workers = [
        f"{host}:{port + local}"
        for host, n in zip(hosts, counts, strict=True)
        for local in range(n)
    ]
    rank = int(env["SLURM_PROCID"])
    if not 0 <= rank < len(workers):
        raise RuntimeError(f"SLURM_PROCID={rank} but the step has {len(workers)} tasks")
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": workers}),
        task_type="worker",
        task_id=rank,
        num_accelerators={"GPU": len(tf.config.list_physical_devices("GPU"))},
        rpc_layer="grpc",
    )


def device_names(strategy: tf.distribute.Strategy) -> list[str]:
    """Short names of the devices the strategy computes on, e.g. ``["CPU:0"]``."""
    try:
        devices = strategy.extended.worker_devices
    except RuntimeError:  # the default strategy: TensorFlow's default device
        gpus = tf.config.list_logical_devices("GPU")
        devices = [(gpus or tf.config.list_logical_devices("CPU"))[0].name]
    return [d.rsplit("/", 1)[-1].removeprefix("device:") for d in devices]


def on_gpus(strategy: tf.distribute.Strategy) -> bool:
    """Whether the strategy computes on GPUs (every device it names is one)."""
    return all(name.upper().startswith("GPU") for name in device_names(strategy))


def num_workers(strategy: tf.distribute.Strategy) -> int:
    """Processes taking part in the strategy's collectives (1 on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, sum(len(spec.get(job, ())) for job in ("chief", "worker")))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes summaries, evaluation and export."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if "chief" in resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type is None or (task_type == "worker" and task_id == 0)


def any_worker(strategy: tf.distribute.Strategy, flag: bool) -> bool:
    """True on every worker when ``flag`` is True on at least one of them.

    One all-reduce of a scalar across workers; on one machine it returns ``flag``
    without communicating. Every worker must call it at the same point.
    """
    if num_workers(strategy) == 1:
        return flag
    return bool(_sum_over_replicas(strategy)(tf.constant(1.0 if flag else 0.0)).numpy() > 0)


@functools.cache
def _sum_over_replicas(strategy: tf.distribute.Strategy):
    """A ``tf.function``: a float32 scalar summed over every replica of ``strategy``."""

    @tf.function
    def total(value):
        per_replica = strategy.run(tf.identity, args=(value,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return total


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Blocks until every worker reaches it (no-op on one machine)."""
    any_worker(strategy, False)
