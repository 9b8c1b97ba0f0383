"""Data throughput: synthetic scenes, native parsing, prepared decoding, train pipeline.

    python scripts/benchmark.py data                      # all figures, ~3 minutes
    python scripts/benchmark.py data --build_default      # + time the quickstart build

Native parsing is measured on synthetic scenes written in the clevr_with_masks
record format (240x320, E=11: the real file's shapes and per-element byte strings);
the same file is then prepared with the TFDS builder and decoded back to the full
official dict (image + masks + attributes) for the prepared figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import tensorflow as tf
import tensorflow_datasets as tfds

from osc_tf.data import compact, multi_object, pipelines, synthetic, tfds_builder


def _rate(iterator, count: int, warmup: int = 1) -> float:
    """Items per second over ``count`` items of ``iterator`` after ``warmup`` items."""
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count / (time.perf_counter() - start)


def synthetic_rates(num: int) -> dict[str, float]:
    """Scenes/s of the renderer alone and with the compact (PNG) encoding."""
    config = synthetic.SceneConfig()
    render = _rate(iter(synthetic.scenes(num + 1, config=config)), num)
    encoded = (compact.compact(s) for s in synthetic.scenes(num + 1, seed=1, config=config))
    return {
        "synthetic scenes/s (render)": render,
        "synthetic scenes/s (render+encode)": _rate(encoded, num),
    }


def native_vs_prepared(workdir: str, num: int) -> dict[str, float]:
    """Records/s parsing the native CLEVR format vs decoding the prepared dataset."""
    manual = os.path.join(workdir, "manual")
    os.makedirs(manual, exist_ok=True)
    path = os.path.join(manual, multi_object.native_file_name("clevr_with_masks"))
    scenes = synthetic.scenes(num, config=synthetic.SceneConfig(240, 320))
    multi_object.write(path, scenes, "clevr_with_masks")
    native = multi_object.read(path, "clevr_with_masks").repeat()
    builder = tfds_builder.builder("clevr_with_masks", data_dir=os.path.join(workdir, "tfds"))
    tfds_builder.prepare(builder, manual_dir=manual)
    prepared = builder.as_dataset(
        split="train+validation+test", read_config=tfds.ReadConfig(try_autocache=False)
    )
    prepared = prepared.repeat().map(
        lambda ex: tfds_builder.official(ex, 11), num_parallel_calls=tf.data.AUTOTUNE
    )
    n = min(num, 200)
    rates = {
        "native clevr_with_masks parse records/s": _rate(iter(native.prefetch(8)), n),
        "prepared clevr_with_masks decode records/s": _rate(iter(prepared.prefetch(8)), 4 * n),
    }
    ratio = rates["prepared clevr_with_masks decode records/s"]
    rates["prepared / native"] = ratio / rates["native clevr_with_masks parse records/s"]
    return rates


def train_rate(
    workdir: str, num: int, batch_size: int, batches: int, size: tuple[int, int], crop: int
) -> dict[str, float]:
    """Images/s and CPU ms per batch of ``MultiObjectData.train`` on synthetic data,
    decoding every epoch's PNGs and with the decoded images kept in memory."""
    h, w = size
    options = dict(
        data_dir=os.path.join(workdir, "tfds"), num_examples=num, image_size=size, crop_size=crop
    )
    start = time.perf_counter()
    pipelines.MultiObjectData(**options).prepare()
    results = {f"synthetic TFDS build scenes/s ({h}x{w})": num / (time.perf_counter() - start)}
    for label, cache_mib in (("decoded per epoch", 0), ("decoded images cached", 1024)):
        data = pipelines.MultiObjectData(**options, cache_mib=cache_mib)
        iterator = iter(data.train(batch_size, seed=0))
        # past the first epoch, which fills the cache
        for _ in range(data.num_examples_in("train") // batch_size + 3):
            next(iterator)
        cpu = _cpu_seconds()
        rate = _rate(iterator, batches, warmup=0) * batch_size
        cpu_ms = 1000 * (_cpu_seconds() - cpu) / batches
        name = (
            f"train pipeline, {label} (2 views of {crop}x{crop} from {h}x{w}, batch {batch_size})"
        )
        results[f"{name}: images/s"] = rate
        results[f"{name}: CPU ms per batch"] = cpu_ms
    return results


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=300, help="scenes for the render rate")
    parser.add_argument("--native_records", type=int, default=200)
    parser.add_argument("--train_scenes", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--train_size", default="120x160", help="HxW of the train images")
    parser.add_argument("--crop_size", type=int, default=128, help="side of the train views")
    parser.add_argument(
        "--build_default", action="store_true", help="time building the 10,000-scene default"
    )
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as workdir:
        results.update(synthetic_rates(args.scenes))
        results.update(native_vs_prepared(workdir, args.native_records))
        size = tuple(int(v) for v in args.train_size.split("x"))
        results.update(
            train_rate(
                workdir, args.train_scenes, args.batch_size, args.batches, size, args.crop_size
            )
        )
        if args.build_default:
            builder = tfds_builder.builder(data_dir=os.path.join(workdir, "default"))
            start = time.perf_counter()
            tfds_builder.prepare(builder)
            seconds = time.perf_counter() - start
            results["default synthetic build seconds (10,000 scenes)"] = seconds
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value:10.1f}")
    return 0
