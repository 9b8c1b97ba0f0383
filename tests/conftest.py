"""Shared pytest set-up and fixtures.

Quiet TensorFlow on the CPU with the Keras TensorFlow backend; one tiny synthetic
dataset built once per session (the one ``gin/tests/tiny.gin`` describes) and one
tiny training run on it that several test modules read.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Child processes (scripts, helper checks) import this checkout's osc_tf, not an installed one.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))

import types  # noqa: E402

import gin  # noqa: E402
import pytest  # noqa: E402

from osc_tf import config, training  # noqa: E402, F401  (training registers `train`)
from osc_tf.data import pipelines  # noqa: E402

#: The dataset of gin/tests/tiny.gin: 40 scenes of 48x64 (splits 28 / 6 / 6), 32x32 crops.
TINY = types.SimpleNamespace(num_examples=40, height=48, width=64, crop_size=32, seed=0)


@pytest.fixture(scope="session")
def tiny():
    """Parameters of the tiny synthetic dataset."""
    return TINY


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """MultiObjectData on the tiny synthetic dataset, built on first use."""
    data = pipelines.MultiObjectData(
        data_dir=str(tmp_path_factory.mktemp("tfds")),
        num_examples=TINY.num_examples,
        image_size=(TINY.height, TINY.width),
        crop_size=TINY.crop_size,
    )
    data.prepare()
    return data


def train_tiny(data_dir: str, workdir: str, *gin_params: str) -> dict:
    """Runs ``train()`` in this process with gin/tests/tiny.gin and extra bindings."""
    config.parse(
        ["gin/tests/tiny.gin"],
        [f"MultiObjectData.data_dir = {str(data_dir)!r}", f"train.workdir = {str(workdir)!r}"]
        + list(gin_params),
    )
    return gin.get_configurable("train")()


@pytest.fixture(scope="session")
def tiny_run(tiny_data, tmp_path_factory):
    """A finished tiny run (4 steps, evaluation and export): its workdir and result."""
    workdir = tmp_path_factory.mktemp("tiny_run")
    result = train_tiny(tiny_data.data_dir, workdir)
    return types.SimpleNamespace(workdir=str(workdir), result=result, data_dir=tiny_data.data_dir)
