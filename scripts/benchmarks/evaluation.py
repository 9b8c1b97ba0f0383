"""Wall time of the evaluation metrics: one segmentation batch and the VQA probe.

    python scripts/benchmark.py evaluation                  # [64, 11, 256] attention, 128² crops
    python scripts/benchmark.py evaluation --batch 32 --size 224 --tokens 784

Segmentation: median time of ``SegmentationMetrics.update`` on a batch of
random soft attention and random ground-truth partitions, after a warm-up call
that traces and compiles (``.numpy()`` of every per-image value included).
Probe: ``linear_probe`` on random slots [samples, K, D] and 96 targets, total
time and time per full-batch step (tracing included, as a user sees it).
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from osc_tf.evaluation.segmentation import SegmentationMetrics
from osc_tf.evaluation.vqa import linear_probe


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark.py evaluation", description=__doc__)
    parser.add_argument("--batch", type=int, default=64, help="images per batch (B)")
    parser.add_argument("--slots", type=int, default=11, help="slots (K)")
    parser.add_argument("--entities", type=int, default=11, help="ground-truth entities (E)")
    parser.add_argument("--tokens", type=int, default=256, help="patch tokens (N = h·h)")
    parser.add_argument("--size", type=int, default=128, help="crop side (S)")
    parser.add_argument("--repeats", type=int, default=10, help="timed segmentation batches")
    parser.add_argument("--samples", type=int, default=5000, help="probe samples")
    parser.add_argument("--dim", type=int, default=64, help="probe feature width (D)")
    parser.add_argument("--steps", type=int, default=200, help="probe steps")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(args.batch, args.slots, args.tokens)).astype(np.float32)
    attention = tf.nn.softmax(3.0 * logits, axis=1)
    entity = rng.integers(0, args.entities, size=(args.batch, args.size, args.size))
    masks = tf.constant(np.eye(args.entities, dtype=bool)[entity].transpose(0, 3, 1, 2))
    visibility = tf.reduce_any(masks, axis=[2, 3])
    metrics = SegmentationMetrics()
    start = time.perf_counter()
    metrics.update(attention, masks, visibility)
    first = time.perf_counter() - start
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        metrics.update(attention, masks, visibility)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(
        f"segmentation [B={args.batch}, K={args.slots}, N={args.tokens}] -> "
        f"[E={args.entities}, S={args.size}]: first call {first:.2f} s, "
        f"then median {1e3 * median:.0f} ms/batch = {args.batch / median:.0f} images/s"
    )

    slots = rng.normal(size=(args.samples, args.slots, args.dim)).astype(np.float32)
    targets = rng.random((args.samples, 96)) < 1 / 15
    start = time.perf_counter()
    linear_probe(slots, targets, num_steps=args.steps)
    total = time.perf_counter() - start
    print(
        f"probe slots [{args.samples}, {args.slots}, {args.dim}] x {args.steps} steps: "
        f"{total:.1f} s total, {1e3 * total / args.steps:.1f} ms/step"
    )
    return 0
