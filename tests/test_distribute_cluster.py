"""Cluster description: SLURM (fake ``scontrol`` on PATH), TF_CONFIG, chief, agreement."""

import json
import os
import types

import pytest
import tensorflow as tf

from osc_tf import distribute
from tests import fake_slurm


@pytest.fixture
def slurm_env(tmp_path, monkeypatch):
    """A SLURM job step of 3 tasks on node9 (2 tasks) and node10 (1 task); this is task 1."""
    for key in list(os.environ):
        if key.startswith("SLURM_") or key in ("TF_CONFIG", distribute.PORT_ENV):
            monkeypatch.delenv(key)
    bin_dir = fake_slurm.install(tmp_path / "bin", ["scontrol"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SCONTROL_LOG", str(tmp_path / "scontrol.log"))
    monkeypatch.setenv("FAKE_SLURM_HOSTS", "node9 node10")  # SLURM's order, not sorted
    monkeypatch.setenv("SLURM_JOB_ID", "123456")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "3")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "node[9-10]")
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2,1")
    return tmp_path


def test_slurm_cluster_follows_scontrol_host_order_and_procid(slurm_env, monkeypatch):
    assert distribute.in_multi_task_slurm_step()
    resolver = distribute.slurm_cluster_resolver()
    port = 20000 + 123456 % 20000  # 23456: the same on every task of the job
    workers = [f"node9:{port}", f"node9:{port + 1}", f"node10:{port}"]
    assert resolver.cluster_spec().as_dict() == {"worker": workers}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.num_accelerators() == {"GPU": 0}
    with open(slurm_env / "scontrol.log") as f:
        assert f.read().split("\n")[0] == "show hostnames node[9-10]"
    assert not distribute.is_chief(types.SimpleNamespace(cluster_resolver=resolver))
    assert distribute.num_workers(types.SimpleNamespace(cluster_resolver=resolver)) == 3

    monkeypatch.setenv(distribute.PORT_ENV, "31000")
    monkeypatch.setenv("SLURM_PROCID", "0")
    resolver = distribute.slurm_cluster_resolver()
    assert resolver.cluster_spec().as_dict()["worker"][2] == "node10:31000"
    assert distribute.is_chief(types.SimpleNamespace(cluster_resolver=resolver))


def test_slurm_task_counts_must_match_the_hosts(slurm_env, monkeypatch):
    assert distribute._expand_counts("2(x3),1") == [2, 2, 2, 1]
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "1(x3)")
    with pytest.raises(RuntimeError, match="2 hosts but tasks per node '1\\(x3\\)'"):
        distribute.slurm_cluster_resolver()


def test_single_task_slurm_job_is_not_multi_worker(slurm_env, monkeypatch):
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")
    assert not distribute.in_multi_task_slurm_step()
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS")
    monkeypatch.setenv("SLURM_NTASKS", "4")  # a batch script of a 4-task job, not an srun step
    assert not distribute.in_multi_task_slurm_step()
    strategy = distribute.select_strategy("auto")
    assert strategy.num_replicas_in_sync == 1 and distribute.num_workers(strategy) == 1
    assert distribute.any_worker(strategy, True) and not distribute.any_worker(strategy, False)
    distribute.barrier(strategy)  # no other worker to wait for: returns at once
    monkeypatch.delenv("SLURM_PROCID")
    with pytest.raises(RuntimeError, match="needs TF_CONFIG"):
        distribute.select_strategy("multi_worker")


def test_chief_from_tf_config_with_and_without_a_chief_task(monkeypatch):
    def resolver(cluster, task_type, index):
        config = {"cluster": cluster, "task": {"type": task_type, "index": index}}
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
        found = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        return types.SimpleNamespace(cluster_resolver=found)

    with_chief = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    assert distribute.is_chief(resolver(with_chief, "chief", 0))
    assert not distribute.is_chief(resolver(with_chief, "worker", 0))
    assert distribute.num_workers(resolver(with_chief, "worker", 1)) == 3
    workers = {"worker": ["b:1", "c:1"]}
    assert distribute.is_chief(resolver(workers, "worker", 0))
    assert not distribute.is_chief(resolver(workers, "worker", 1))
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(RuntimeError, match="not valid JSON"):
        distribute.multi_worker_strategy()
