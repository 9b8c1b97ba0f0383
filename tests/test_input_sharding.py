"""Input pipelines of several workers together yield exactly one process's global batches."""

import numpy as np
import pytest
import tensorflow as tf

from osc_tf.data import pipelines


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    built = pipelines.MultiObjectData(
        data_dir=str(tmp_path_factory.mktemp("tfds")),
        num_examples=40,
        image_size=(48, 64),
        crop_size=16,
        shuffle_buffer=64,
    )
    built.prepare()  # splits 28 / 6 / 6
    return built


def two_views(batch, b: int):
    """[2B, S, S, 3] → (view 0 [B, ...], view 1 [B, ...])."""
    images = batch["images"].numpy()
    return images[:b], images[b:]


@pytest.mark.parametrize("start_step", [0, 5])
def test_two_pipelines_interleave_into_the_single_process_batch(data, start_step):
    """Pipeline p of 2 holds images 2k + p of each global batch of 8 (both views)."""
    steps = 9  # 9 x 8 = 72 images: the stream crosses two epoch boundaries (28 a epoch)
    whole = data.train(8, seed=1, start_step=start_step)
    shards = [
        data.train(
            8,
            seed=1,
            input_context=tf.distribute.InputContext(2, p, 2),
            start_step=start_step,
        )
        for p in range(2)
    ]
    for batch, part0, part1 in zip(
        whole.take(steps), *(s.take(steps) for s in shards), strict=True
    ):
        view0, view1 = two_views(batch, 8)
        for p, part in enumerate((part0, part1)):
            assert part["images"].shape == (8, 16, 16, 3)  # 4 images per replica, 2 views
            mine0, mine1 = two_views(part, 4)
            np.testing.assert_allclose(mine0, view0[p::2], atol=1e-6)
            np.testing.assert_allclose(mine1, view1[p::2], atol=1e-6)
    assert np.abs(view0 - view1).mean() > 0.05  # two different views, not one image twice


def test_validation_pipelines_drop_the_partial_global_batch_evenly(data):
    whole = list(data.validation(4))  # 6 images: a batch of 4 and one of 2
    assert [b["images"].shape[0] for b in whole] == [8, 4]
    view0, view1 = two_views(whole[0], 4)
    for p in range(2):
        context = tf.distribute.InputContext(2, p, 2)
        parts = list(data.validation(4, input_context=context, drop_remainder=True))
        assert len(parts) == 1  # both pipelines: one full batch, the partial one dropped
        mine0, mine1 = two_views(parts[0], 2)
        np.testing.assert_allclose(mine0, view0[p::2], atol=1e-6)
        np.testing.assert_allclose(mine1, view1[p::2], atol=1e-6)
