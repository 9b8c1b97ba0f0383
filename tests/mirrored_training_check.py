"""Run by tests/test_training.py in its own process (logical devices must be set
before TensorFlow starts): MirroredStrategy over 2 logical CPU devices against one
device on the same global batch, then the training loop under MirroredStrategy.

    python tests/mirrored_training_check.py TFDS_DATA_DIR
"""

import sys
import tempfile

import gin
import keras
import numpy as np
import tensorflow as tf

from osc_tf import config, distribute, training  # noqa: F401  (registers `train`)
from osc_tf.factories import build_model
from osc_tf.losses import Objective


def one_step(strategy, batch_views):
    """One SGD train_step on the global batch [2B, S, S, 3]; returns (logs, -lr·gradient).

    SGD makes the weight change the gradient itself (Adam's first step divides a
    gradient by its own magnitude, which amplifies rounding where it is near zero).
    """
    with strategy.scope():
        model = build_model(0, 32)
        model.compile(optimizer=keras.optimizers.SGD(0.1), objective=Objective())
    before = [v.numpy() for v in model.weights]
    b = batch_views.shape[0] // 2
    replicas = strategy.num_replicas_in_sync
    per = b // replicas

    def value_fn(ctx):
        # Replica r holds [its view-0 rows; its view-1 rows] of images r·per .. (r+1)·per-1.
        r = ctx.replica_id_in_sync_group
        view0 = batch_views[r * per : (r + 1) * per]
        view1 = batch_views[b + r * per : b + (r + 1) * per]
        return {"images": tf.concat([view0, view1], axis=0)}

    batch = strategy.experimental_distribute_values_from_function(value_fn)

    @tf.function
    def step(batch):
        out = strategy.run(model.train_step, args=(batch,))
        return {
            k: strategy.reduce("SUM" if k.startswith("loss") else "MEAN", v, axis=None)
            for k, v in out.items()
        }

    logs = {k: float(v) for k, v in step(batch).items()}
    return logs, [v.numpy() - w for v, w in zip(model.weights, before, strict=True)]


def replicas_sample_independently(strategy) -> None:
    """Training draws (Gaussian query noise, k-means starts) differ between replicas;
    inference draws (a fixed seed) are the same on both."""
    from osc_tf.layers.queries import GaussianQueries, KMeansQueries

    tokens = tf.constant(np.random.default_rng(0).normal(size=(3, 16, 8)), tf.float32)
    with strategy.scope():
        layers = [GaussianQueries(num_slots=4), KMeansQueries(num_slots=4)]
        for layer in layers:
            layer(tokens)

    for layer in layers:

        @tf.function
        def draw(in_training, layer=layer):
            return strategy.run(lambda: layer(tokens, training=in_training))

        for in_training in (True, False):
            a, b = (t.numpy() for t in strategy.experimental_local_results(draw(in_training)))
            if in_training:
                assert not np.allclose(a, b), f"{type(layer).__name__}: replicas drew the same"
            else:
                np.testing.assert_array_equal(a, b)
    print("replicas sample independently")


def main(data_dir: str) -> int:
    mirrored = distribute.select_strategy("mirrored", cpu_devices=2)
    assert mirrored.num_replicas_in_sync == 2
    replicas_sample_independently(mirrored)
    config.parse(["gin/tests/tiny.gin"], [f"MultiObjectData.data_dir = {data_dir!r}"])
    data = gin.get_configurable("MultiObjectData")()
    images = next(iter(data.train(4, seed=1)))["images"]  # [8, 32, 32, 3]
    single_logs, single_updates = one_step(tf.distribute.get_strategy(), images)
    mirrored_logs, mirrored_updates = one_step(mirrored, images)
    for key in ("loss", "loss_global_ctr", "loss_object_ctr_img", "grad_norm", "param_norm"):
        np.testing.assert_allclose(mirrored_logs[key], single_logs[key], rtol=1e-5, err_msg=key)
    scale = max(float(np.abs(u).max()) for u in single_updates)
    assert scale > 0
    for a, b in zip(mirrored_updates, single_updates, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * scale)
    print("one step equal:", {k: round(v, 6) for k, v in mirrored_logs.items()})

    with tempfile.TemporaryDirectory() as workdir:
        config.parse(
            ["gin/tests/tiny.gin"],
            [
                f"MultiObjectData.data_dir = {data_dir!r}",
                f"train.workdir = {workdir!r}",
                "train.strategy = 'mirrored'",
                "train.evaluate = False",
                "train.export = False",
            ],
        )
        result = gin.get_configurable("train")()
        assert result["status"] == "finished" and np.isfinite(result["loss"]), result
    print("mirrored training ran:", result["step"], "steps")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
