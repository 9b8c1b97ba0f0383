"""Choosing the tf.distribute strategy from the environment.

Order (``kind="auto"``):

1. ``TF_CONFIG`` is set → ``MultiWorkerMirroredStrategy`` (one process per machine).
2. More than one GPU is visible → ``MirroredStrategy`` over all of them.
3. Otherwise the default strategy (one device).

``kind="mirrored"`` forces ``MirroredStrategy`` over every visible GPU, or,
without GPUs, over ``cpu_devices`` logical CPU devices (tests and debugging of
the multi-replica path on a laptop). The training loop is the same code path for
all of them: ``strategy.run(model.train_step, ...)``.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

KINDS = ("auto", "default", "mirrored", "multi_worker")


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
    if kind == "multi_worker" or (kind == "auto" and os.environ.get("TF_CONFIG")):
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
    """``MultiWorkerMirroredStrategy`` from ``TF_CONFIG``."""
    if not os.environ.get("TF_CONFIG"):
        raise RuntimeError("multi-worker training needs TF_CONFIG to describe the cluster")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
        raise RuntimeError(f"TF_CONFIG is not valid JSON: {e}") from e
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the one process that writes summaries, evaluation and export."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if "chief" in resolver.cluster_spec().as_dict():
        return task_type == "chief"
    return task_type is None or (task_type == "worker" and task_id == 0)
