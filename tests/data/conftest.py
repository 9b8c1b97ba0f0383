"""Shared data fixtures: one tiny synthetic dataset built once per session."""

import types

import pytest

from osc_tf.data import pipelines

TINY = types.SimpleNamespace(num_examples=40, height=48, width=64, crop_size=32, seed=0)


@pytest.fixture(scope="session")
def tiny():
    """Parameters of the tiny synthetic dataset (splits 28 / 6 / 6 scenes)."""
    return TINY


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """MultiObjectData on 40 synthetic 48x64 scenes, built on first use."""
    data = pipelines.MultiObjectData(
        data_dir=str(tmp_path_factory.mktemp("tfds")),
        num_examples=TINY.num_examples,
        image_size=(TINY.height, TINY.width),
        crop_size=TINY.crop_size,
    )
    data.prepare()
    return data
