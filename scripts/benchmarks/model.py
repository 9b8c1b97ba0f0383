"""Forward and forward+backward throughput of ObjectCentricModel compositions.

    python scripts/benchmark.py model                       # original defaults, 128x128
    python scripts/benchmark.py model --queries learned,kmeans_euclidean --obj_fns slot_attention
    python scripts/benchmark.py model --batch_size 16 --image_size 64 --steps 3

For every (queries, object function) pair, the model of ``gin/model/default.gin``
with those parts swapped in is timed in three modes: ``graph`` (tf.function
forward), ``xla`` (tf.function(jit_compile=True) forward) and ``xla_grad``
(XLA forward + gradients of a mean-square loss on every output, no optimizer).
Prints compile time (first call) and images/s over ``--steps`` timed calls.
"""

import argparse
import time

import gin
import numpy as np
import tensorflow as tf

from osc_tf import config


def build(queries: str, obj_fn: str):
    """The default model with the given queries and object function (gin/model files)."""
    files = [
        "gin/model/default.gin",
        f"gin/model/queries/{queries}.gin",
        f"gin/model/obj_fn/{obj_fn}.gin",
    ]
    try:
        config.parse(files)
        return gin.get_configurable("ObjectCentricModel")()
    finally:
        gin.clear_config()


def _modes(model):
    def forward(images):
        return model(images, training=False)

    def forward_backward(images):
        with tf.GradientTape() as tape:
            outputs = model(images, training=True)
            loss = tf.add_n([tf.reduce_mean(tf.square(v)) for v in outputs.values()])
        return tape.gradient(loss, model.trainable_variables)

    return {
        "graph": tf.function(forward),
        "xla": tf.function(forward, jit_compile=True),
        "xla_grad": tf.function(forward_backward, jit_compile=True),
    }


def _time(fn, images, steps: int) -> tuple[float, float]:
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), fn(images))
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        tf.nest.map_structure(lambda t: t.numpy(), fn(images))
    return compile_s, steps * images.shape[0] / (time.perf_counter() - start)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark.py model", description=__doc__.split("\n")[0])
    parser.add_argument("--queries", default="learned,gaussian,kmeans_euclidean")
    parser.add_argument("--obj_fns", default="slot_attention,cross_attention,co_attention")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    shape = (args.batch_size, args.image_size, args.image_size, 3)
    images = tf.constant(rng.normal(size=shape).astype("float32"))
    size = f"{args.image_size}x{args.image_size}"
    print(f"batch {args.batch_size}, images {size}, {args.steps} timed steps")
    print(f"{'queries':18s} {'object fn':16s} {'mode':9s} {'compile s':>9s} {'images/s':>9s}")
    for queries in args.queries.split(","):
        for obj_fn in args.obj_fns.split(","):
            model = build(queries, obj_fn)
            model(images[:1])
            for mode, fn in _modes(model).items():
                compile_s, rate = _time(fn, images, args.steps)
                print(f"{queries:18s} {obj_fn:16s} {mode:9s} {compile_s:9.1f} {rate:9.1f}")
    return 0
