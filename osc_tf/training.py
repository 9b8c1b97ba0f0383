"""The training loop, ``train()``, and reloading a trained run, ``load()``.

``train`` is what ``scripts/train.py`` runs; this module registers it with gin
(``train.num_steps = ...``), so import it before parsing a run's configuration.

Resume order: (1) the newest checkpoint in ``workdir/checkpoints`` (same step,
same optimizer state, same data position); else (2) the model weights of
``init_from`` (a checkpoint path or a workdir); else (3) scratch. Logging,
validation, figures, checkpoints, evaluation and export also happen on the last
step. SIGTERM/SIGINT/SIGUSR2 (e.g. SLURM pre-emption or time limit) saves a
checkpoint and returns; the workers of a multi-worker run agree on the step to
stop at. Only the chief process writes summaries, figures, evaluation and export
(the others write their share of each checkpoint to a temporary folder and wait).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable

import gin
import keras
import numpy as np
import tensorflow as tf

from osc_tf import config, configurables, distribute
from osc_tf.checkpoints import Checkpoints, resolve_checkpoint, restore_model
from osc_tf.console import Console
from osc_tf.data.augment import denormalize
from osc_tf.evaluation.figures import attention_figure
from osc_tf.evaluation.run import check_configured_protocol, evaluate_run
from osc_tf.export import export_model
from osc_tf.factories import build_data, build_model, train_parameter
from osc_tf.optimizers import TorchAdamW
from osc_tf.preemption import PreemptionFlag
from osc_tf.run_info import write_run_info
from osc_tf.schedules import WarmupDecay

log = logging.getLogger("osc_tf")

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: Steps between the workers' agreement on a pre-emption stop (one scalar
#: all-reduce, which waits for the step) when several machines train together.
PREEMPTION_CHECK_INTERVAL = 10
# Parts of the model XLA-compiled on their own by default (ObjectCentricModel.compile):
# the object function, faster compiled on a CPU at every size measured.
DEFAULT_JIT_PARTS = ("object_fn",)


def train(
    workdir: str = gin.REQUIRED,
    num_steps: int = 10_000,
    batch_size: int = 64,
    seed: int = 0,
    objective: Callable = gin.REQUIRED,
    optimizer: Callable = TorchAdamW,
    lr_schedule: Callable = WarmupDecay,
    strategy: str = "auto",
    precision: str = "float32",
    jit_compile: bool | None = None,
    jit_compile_parts: tuple[str, ...] | None = None,
    log_interval: int = 50,
    val_interval: int = 500,
    val_batches: int = 4,
    viz_interval: int = 1000,
    test_interval: int = 0,
    test_max_samples: int | None = None,
    checkpoint_interval: int = 1000,
    keep_checkpoints: int = 3,
    init_from: str | None = None,
    max_steps_per_run: int | None = None,
    evaluate: bool = True,
    export: bool = True,
) -> dict:
    """Trains the configured ``ObjectCentricModel`` on ``MultiObjectData`` two-view batches.

    Args:
        workdir: where config, checkpoints, TensorBoard events, metrics and export go.
        num_steps: total step budget; re-running a workdir with a larger one continues.
        batch_size: images per step (global, across replicas); each gives two views.
        seed: seeds Keras (weights, sampling, dropout) and the data order/augmentation.
        objective: the weighted loss (``@Objective()``).
        optimizer: optimizer class, called with ``learning_rate=<schedule>``.
        lr_schedule: schedule class, called with ``total_steps=num_steps``.
        strategy: ``auto`` | ``default`` | ``mirrored`` | ``multi_worker`` (osc_tf.distribute).
        precision: ``float32`` | ``mixed_bfloat16`` | ``mixed_float16`` (loss scaling).
        jit_compile: XLA-compile the per-replica forward/backward; None (default):
            on GPUs, not on CPUs (where the CPU kernels of
            ``osc_tf.layers.cpu_kernels`` are faster than XLA's CPU code).
        jit_compile_parts: parts of the model XLA-compiled each on its own when
            ``jit_compile`` is off (``ObjectCentricModel.compile``); None (default):
            ``("object_fn",)``, faster on CPUs at every size measured. The
            quickstart and discovery configs add ``"backbone"`` (faster at 64×64).
        log_interval, val_interval, viz_interval, checkpoint_interval: steps between
            console/TensorBoard logs, validation losses, attention figures, checkpoints.
        test_interval: steps between evaluations on the test split (0: only at the end).
        test_max_samples: cap on test images per evaluation (None: the whole split).
        val_batches: validation batches per validation.
        init_from: checkpoint or workdir whose model weights start a new run.
        max_steps_per_run: stop after this many steps of this invocation with a
            checkpoint (status ``paused``); running again continues. For jobs
            with a time limit shorter than the whole run.
        evaluate: evaluate at ``test_interval`` and at the end.
        export: write the SavedModel to ``workdir/export`` at the end.

    Returns:
        The last logged training metrics plus ``step`` and ``status`` (``"finished"``,
        or ``"preempted"`` with ``signal``: the name of the signal this process
        received, None on a worker stopped by another worker's signal).
    """
    for name, value in (("num_steps", num_steps), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"train.{name} must be a positive integer, got {value!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}, got {precision!r}")
    if evaluate:
        check_configured_protocol()  # a bad evaluation setting fails now, not after training
    strat = distribute.select_strategy(strategy)
    chief = distribute.is_chief(strat)
    keras.mixed_precision.set_global_policy(precision)
    data = build_data()
    data.prepare()  # an unprepared dataset fails now (missing synthetic data is built)
    with strat.scope():
        net = build_model(seed, data.crop_size)
        opt = optimizer(learning_rate=lr_schedule(total_steps=num_steps))
        if precision == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        if jit_compile is None:
            jit_compile = distribute.on_gpus(strat)
        net.compile(
            optimizer=opt,
            objective=objective,
            jit_compile_forward=jit_compile,
            jit_compile_parts=resolve_jit_parts(jit_compile_parts),
        )
        opt.build(net.trainable_variables)
    ckpts = Checkpoints(workdir, net, opt, keep=keep_checkpoints, chief=chief)
    start = ckpts.restore_or_initialize(init_from)
    console = Console(num_steps, start, log_interval)
    writers = _writers(workdir, chief)
    if chief:
        console.plan(
            start,
            workdir,
            data=f"{data.builder.builder_config.name}, {data.num_examples_in('train'):,} "
            f"training images, in {data.builder.data_dir}",
            model=f"{net.count_params():,} parameters, {data.crop_size}x{data.crop_size} crops",
            batch=f"{batch_size} images (two views each) per step",
            devices=f"{strat.num_replicas_in_sync} replica(s) on "
            + ", ".join(distribute.device_names(strat)),
        )
        config.write(workdir)
        write_run_info(workdir, seed=seed, start_step=start)
        with writers["train"].as_default(step=start):
            tf.summary.text("operative_config", "```\n" + config.config_text() + "\n```")

    def evaluate_now(step):
        evaluate_run(
            net,
            data,
            workdir,
            step,
            init_model_fn=lambda: build_model(seed, data.crop_size),
            max_samples=test_max_samples,
            checkpoint=ckpts.latest,
            progress=console.tty,
        )

    train_ds = strat.distribute_datasets_from_function(
        lambda ctx: data.train(batch_size, seed=seed, input_context=ctx, start_step=start)
    )
    # Steps run asynchronously: the host reads the step's outputs (a transfer that
    # waits for the device) only on the steps that log or checkpoint. With several
    # replicas the other steps skip the metrics that need their own all-reduce
    # (the global gradient norm).
    step_fn = _distributed(strat, net.train_step)
    quiet_fn = step_fn
    if strat.num_replicas_in_sync > 1:
        quiet_fn = _distributed(strat, functools.partial(net.train_step, metrics=False))
    val_fn = _distributed(strat, net.test_step)
    logs, step, iterator = {}, start, iter(train_ds)
    tick, images_seen = time.perf_counter(), 0
    stop_step = (
        num_steps if max_steps_per_run is None else min(num_steps, start + max_steps_per_run)
    )
    preempt_check = 1 if distribute.num_workers(strat) == 1 else PREEMPTION_CHECK_INTERVAL
    with PreemptionFlag() as preempt:
        while step < stop_step:
            step += 1
            images_seen += batch_size
            last = step == num_steps
            pause = step == stop_step and not last
            # Workers agree on a stop every preempt_check steps (an all-reduce).
            stop = (step % preempt_check == 0 or pause or last) and distribute.any_worker(
                strat, preempt.raised
            )
            checkpoint = _due(step, checkpoint_interval, last) or stop or pause
            logged = step % log_interval == 0 or last
            # Steps that validate, draw or evaluate wait anyway. The same on every
            # worker (not chief-dependent): step_fn and quiet_fn differ in collectives.
            other = any(_due(step, i, last) for i in (val_interval, viz_interval))
            other = other or (evaluate and _due(step, test_interval, last))
            if not (logged or checkpoint or other):
                quiet_fn(next(iterator))
                console.update(step, None)
                continue
            logs = fetch(step_fn(next(iterator)))
            if not np.isfinite(logs["loss"]):
                raise FloatingPointError(
                    f"non-finite loss {logs['loss']} at step {step}; the last good checkpoint "
                    f"is {ckpts.latest or 'none (no checkpoint was written yet)'}"
                )
            if logged:
                now = time.perf_counter()
                logs["images_per_second"] = images_seen / max(now - tick, 1e-9)
                tick, images_seen = now, 0
                _write(writers["train"], logs, step)
            console.update(step, logs)
            if _due(step, val_interval, last):
                val = _validate(val_fn, strat, data, batch_size, val_batches)
                _write(writers["validation"], val, step)
                console.note(step, "validation", val)
            if chief and _due(step, viz_interval, last):
                _figure(writers["validation"], net, data, step)
            if checkpoint:
                ckpts.save(step)
            if stop or pause:
                status = "preempted" if stop else "paused"
                log.warning("%s: checkpoint saved at step %d; stopping", status, step)
                result = {**logs, "step": step, "status": status}
                return result | ({"signal": preempt.signal} if stop else {})
            if evaluate and chief and _due(step, test_interval, last):
                evaluate_now(step)
    if export and chief:
        console.note(step, "export", {})
        export_model(net, workdir, data.crop_size)
    result = {**logs, "step": step, "status": "finished"}
    if chief:
        with open(os.path.join(workdir, "train_result.json"), "w") as f:
            json.dump(result, f, indent=2)
    distribute.barrier(strat)  # other workers wait for the chief's evaluation and export
    console.done(workdir)
    return result


def resolve_jit_parts(parts: tuple[str, ...] | None) -> tuple[str, ...]:
    """``train.jit_compile_parts`` as the model gets it: None means the object function."""
    if isinstance(parts, str):
        raise ValueError(f"train.jit_compile_parts must be a tuple of part names, got {parts!r}")
    return DEFAULT_JIT_PARTS if parts is None else tuple(parts)


def fetch(outputs: dict) -> dict:
    """The host's copy of a step's outputs: the one place the loop waits for the device."""
    return {k: float(v) for k, v in outputs.items()}


def _due(step: int, interval: int, last: bool) -> bool:
    return last or (interval > 0 and step % interval == 0)


def _distributed(strategy: tf.distribute.Strategy, fn: Callable) -> Callable:
    """One per-replica call of ``fn``; losses summed (they are global-mean shares)."""

    @tf.function
    def run(batch):
        per_replica = strategy.run(fn, args=(batch,))
        return {
            k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            if k.startswith("loss")
            else strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
            for k, v in per_replica.items()
        }

    return run


def _validate(val_fn, strategy, data, batch_size: int, num_batches: int) -> dict:
    """Mean losses over the first ``num_batches`` full global validation batches."""
    ds = strategy.distribute_datasets_from_function(
        lambda ctx: data.validation(batch_size, input_context=ctx, drop_remainder=True)
    )
    iterator, totals, count = iter(ds), {}, 0
    for _ in range(num_batches):
        batch = iterator.get_next_as_optional()  # no value once any replica runs dry
        if not batch.has_value():
            break
        for k, v in val_fn(batch.get_value()).items():
            totals[k] = totals.get(k, 0.0) + float(v)
        count += 1
    return {k: v / max(count, 1) for k, v in totals.items() if k.startswith("loss")}


def _writers(workdir: str, chief: bool) -> dict:
    if not chief:
        return {k: tf.summary.create_noop_writer() for k in ("train", "validation")}
    root = os.path.join(workdir, "tensorboard")
    return {
        k: tf.summary.create_file_writer(os.path.join(root, k)) for k in ("train", "validation")
    }


def _write(writer, logs: dict, step: int) -> None:
    with writer.as_default(step=step):
        for k, v in logs.items():
            tf.summary.scalar(k, v)
    writer.flush()


def _figure(writer, net, data, step: int) -> None:
    images = next(iter(data.validation(8)))["images"][:8]
    outputs = net(images, training=False)
    if "attention" not in outputs:
        return
    pngs = {"slot_attention": attention_figure(denormalize(images), outputs["attention"])}
    if "masks" in outputs:
        pngs["decoder_masks"] = attention_figure(denormalize(images), outputs["masks"])
    with writer.as_default(step=step):
        for name, png in pngs.items():
            tf.summary.image(name, tf.image.decode_png(png)[None])
    writer.flush()


def load(workdir: str, checkpoint: str | None = None, gin_params=()) -> dict:
    """Re-creates a run's model (restored weights), data and seed from its workdir.

    Args:
        workdir: a training run's directory.
        checkpoint: a checkpoint prefix; default the workdir's newest.
        gin_params: extra bindings applied after the stored configuration.

    Returns:
        ``{"model", "data", "seed", "step", "checkpoint"}``.
    """
    config.read_workdir(workdir, gin_params)
    seed = train_parameter("seed", 0)
    data = build_data()
    model = build_model(seed, data.crop_size)
    path = resolve_checkpoint(checkpoint or workdir)
    restore_model(model, path)
    step = int(tf.train.load_checkpoint(path).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    return {"model": model, "data": data, "seed": seed, "step": step, "checkpoint": path}


configurables.register(train)
