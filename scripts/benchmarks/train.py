"""Images/s and peak RSS of the full training step, one fresh process per configuration.

    python scripts/benchmark.py train                  # the whole table (about 6 min)
    python scripts/benchmark.py train --rows default,quickstart   # the two sizes of the
                                                       # side-by-side with the original
    python scripts/benchmark.py train --only default   # one row
    python scripts/benchmark.py train --steps 10 --rows default,xla

The step is the one ``osc_tf.training.train`` runs: ``strategy.run(model.train_step)``
inside a ``tf.function`` (forward of both views, every loss term with its Hungarian
matching, backward, AdamW update, the logged health metrics). The baseline row is
the original study's default, ``gin/train.gin`` (slots_to_global, ViT P=8 D=64 4×4,
11 learned queries, slot attention; ctr + ctr_img; AdamW with the warm-up/cosine
schedule), at batch 64 images = 128 views of 128×128. Every other row
changes one thing. Rows compile the parts ``train.jit_compile_parts`` names, resolved
as training does (the object function by default; the quickstart rows add the
backbone, as ``gin/experiments/quickstart.gin``); the ``*_op_by_op`` rows none. Input
batches are random tensors already in memory, so the figure is the model's cost alone
(``benchmark.py data`` measures the pipeline).

Images/s count source images (each gives two views) per median step time over
``--steps`` timed steps after ``--warmup`` steps (the first traces and compiles);
the range of the step times is printed beside it. Peak RSS is the
process's maximum resident set size at the end (``ru_maxrss``), including
TensorFlow itself; each row runs in its own process so that peaks do not mix.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# name -> (description, batch size, extra gin files, extra gin bindings, precision, XLA,
#          crop size or None for --image_size)
# the quickstart's backbone (D=64, 4 heads, 2 layers, P=8) and XLA-compiled parts
_Q = ["ViT.num_layers = 2", "train.jit_compile_parts = ('backbone', 'object_fn')"]
_OP_BY_OP = ["train.jit_compile_parts = ()"]  # no part XLA-compiled
ROWS = {
    "default": ("original default", 64, [], [], "float32", False, None),
    "quickstart": ("quickstart: 64x64, 2 layers", 32, [], _Q, "float32", False, 64),
    "recompute": (
        "attention recomputed",
        64,
        [],
        ["ViT.recompute_attention = True"],
        "float32",
        False,
        None,
    ),
    "default_op_by_op": ("default, no part compiled", 64, [], _OP_BY_OP, "float32", False, None),
    "xla": ("XLA forward/backward", 64, [], [], "float32", True, None),
    "quickstart_op_by_op": (
        "quickstart, no part compiled",
        32,
        [],
        _Q + _OP_BY_OP,
        "float32",
        False,
        64,
    ),
    "quickstart_xla": ("quickstart + XLA", 32, [], _Q, "float32", True, 64),
    "discovery": (
        "discovery: quickstart + MaskDecoder",
        32,
        ["gin/experiments/discovery.gin"],
        [],
        "float32",
        False,
        64,
    ),
    "discovery_op_by_op": (
        "discovery, no part compiled",
        32,
        ["gin/experiments/discovery.gin"],
        _OP_BY_OP,
        "float32",
        False,
        64,
    ),
    "discovery_xla": (
        "discovery + XLA",
        32,
        ["gin/experiments/discovery.gin"],
        [],
        "float32",
        True,
        64,
    ),
    "bf16": ("mixed_bfloat16", 64, [], [], "mixed_bfloat16", False, None),
    "bf16_xla": ("mixed_bfloat16 + XLA", 64, [], [], "mixed_bfloat16", True, None),
    "b16": ("batch 16", 16, [], [], "float32", False, None),
    "b32": ("batch 32", 32, [], [], "float32", False, None),
    "b128": ("batch 128", 128, [], [], "float32", False, None),
    "cross": (
        "cross-attention decoder",
        64,
        ["gin/model/obj_fn/cross_attention.gin"],
        [],
        "float32",
        False,
        None,
    ),
    "patch4": ("patch 4 (N = 1024)", 64, [], ["ViT.patch_size = 4"], "float32", False, None),
    "k7": ("K = 7", 64, [], ["LearnedQueries.num_slots = 7"], "float32", False, None),
    "k16": ("K = 16", 64, [], ["LearnedQueries.num_slots = 16"], "float32", False, None),
}


def crop_size(row: str, image_size: int) -> int:
    """The row's crop size: its own (the quickstart's 64) or ``--image_size``."""
    return ROWS[row][6] or image_size


def machine() -> str:
    """The CPU's model name and the cores this process may use."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        import platform

        model = platform.processor() or model
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores"


def measure(row: str, steps: int, warmup: int, image_size: int) -> dict:
    """Runs one row in this process; returns its figures."""
    import gin
    import keras
    import numpy as np
    import tensorflow as tf

    from osc_tf import config
    from osc_tf.factories import build_model, train_parameter
    from osc_tf.training import _distributed, resolve_jit_parts

    _, batch_size, files, bindings, precision, xla, _ = ROWS[row]
    image_size = crop_size(row, image_size)
    # The original study's defaults; only its model, losses and optimizer are used here.
    config.parse(["gin/train.gin", *files], bindings)
    keras.mixed_precision.set_global_policy(precision)
    strategy = tf.distribute.get_strategy()
    model = build_model(0, image_size)
    schedule = gin.get_configurable("WarmupDecay")(total_steps=100_000)
    # the configured optimizer (train.optimizer = @TorchAdamW in gin/optim/adamw.gin)
    optimizer_name = gin.query_parameter("train.optimizer").selector
    optimizer = gin.get_configurable(optimizer_name)(learning_rate=schedule)
    parts = resolve_jit_parts(train_parameter("jit_compile_parts"))  # as training resolves it
    model.compile(
        optimizer=optimizer,
        objective=gin.get_configurable("Objective")(),
        jit_compile_forward=xla,
        jit_compile_parts=parts,
    )
    optimizer.build(model.trainable_variables)
    step = _distributed(strategy, model.train_step)

    rng = np.random.default_rng(0)
    batches = [
        {
            "images": tf.constant(
                rng.standard_normal((2 * batch_size, image_size, image_size, 3), "float32")
            )
        }
        for _ in range(2)
    ]
    start = time.perf_counter()
    for i in range(warmup):
        logs = step(batches[i % 2])
        float(logs["loss"])
    warmup_s = time.perf_counter() - start
    times = []
    for i in range(steps):
        start = time.perf_counter()
        logs = step(batches[i % 2])
        float(logs["loss"])  # waits for the step
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {
        "row": row,
        "jit_compile_parts": [] if xla else list(parts),
        "batch_size": batch_size,
        "image_size": image_size,
        "params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "warmup_s": warmup_s,
        "step_ms": 1000 * median,
        "step_ms_min": 1000 * min(times),
        "step_ms_max": 1000 * max(times),
        "images_per_s": batch_size / median,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "loss": float(logs["loss"]),
    }


def matmul_rate(size: int = 4096, repeats: int = 5) -> float:
    """GFLOP/s of one float32 ``size``² matmul (best of ``repeats``): the machine's scale."""
    import tensorflow as tf

    a, b = (tf.random.normal((size, size), seed=i) for i in range(2))
    product = tf.function(lambda: tf.matmul(a, b))
    product().numpy()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        product().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="benchmark.py train", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated, of {sorted(ROWS)}"
    )
    parser.add_argument("--only", help="run this one row in this process (used by the table)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--json", help="append every row's figures to this JSON-lines file")
    args = parser.parse_args(argv)

    if args.only:
        print(json.dumps(measure(args.only, args.steps, args.warmup, args.image_size)))
        return 0
    rows = args.rows.split(",")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {sorted(ROWS)}")
    print(f"{machine()}; float32 matmul 4096²: {matmul_rate():.0f} GFLOP/s")
    print(
        f"images {args.image_size}x{args.image_size} unless the row says otherwise (two views "
        f"per image), {args.warmup} warm-up + {args.steps} timed steps"
    )
    print(
        f"{'row':20s} {'configuration':30s} {'batch':>5s} {'crop':>4s} {'first s':>8s} "
        f"{'ms/step':>8s} {'range ms':>11s} {'images/s':>9s} {'peak RSS GB':>11s}"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    for row in rows:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--only",
            row,
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--image_size",
            str(args.image_size),
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            tail = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{row:20s} failed: {tail}")
            continue
        fig = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{row:20s} {ROWS[row][0]:30s} {fig['batch_size']:5d} {fig['image_size']:4d} "
            f"{fig['warmup_s']:8.1f} "
            f"{fig['step_ms']:8.0f} {fig['step_ms_min']:5.0f}-{fig['step_ms_max']:<5.0f} "
            f"{fig['images_per_s']:9.1f} {fig['peak_rss_gb']:11.2f}",
            flush=True,
        )
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(fig) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
