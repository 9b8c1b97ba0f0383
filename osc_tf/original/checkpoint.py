"""Reading the original's checkpoints and writing them as osc_tf workdirs.

The original's training writes ``checkpoint.<epoch>.pth`` in its Hydra run folder:
``{"model": state_dict, "optimizer": ..., "steps": int}``. Reading it needs
PyTorch, an optional dependency (``TORCH_INSTALL``); an ``.npz`` of the same
state dict needs only NumPy and is read without pickle. ``import_checkpoint``
builds the configured model, imports the weights (``osc_tf.original.weights``)
and writes a workdir that evaluation, export, ``osc_tf.load_model`` and a
resumed training accept.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np

from osc_tf.original.hydra import (
    ImportFailure,
    find_original_config,
    first_line,
    read_original_config,
    translate_config,
)
from osc_tf.original.weights import import_state_dict

TORCH_INSTALL = "pip install torch==2.13.0"
BASE_GIN_FILE = "gin/train.gin"


def read_checkpoint(path: str) -> tuple[dict, dict]:
    """The state dict (name -> numpy array) and what else the file says (epoch, steps).

    ``.npz``: the arrays are the state dict. Anything else is read with
    ``torch.load`` (weights only): the original's ``{"model": ..., "steps": ...}``
    or a bare state dict.
    """
    if not os.path.isfile(path):
        raise ImportFailure(f"cannot read {path}: no such file")
    info: dict = {"source": os.path.abspath(path)}
    match = re.fullmatch(r"checkpoint\.(\d+)\.\w+", os.path.basename(path))
    if match:
        info["epoch"] = int(match.group(1))
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as archive:
                state_dict = {name: archive[name] for name in archive.files}
        except Exception as e:  # zip, format and pickle errors alike
            raise ImportFailure(f"cannot read {path} as .npz: {first_line(e)}") from None
    else:
        state_dict = _read_torch(path, info)
    if not state_dict:
        raise ImportFailure(f"{path} holds no tensors")
    return state_dict, info


def _read_torch(path: str, info: dict) -> dict:
    try:
        import torch
    except ImportError:
        raise ImportFailure(
            f"reading {path} needs PyTorch, an optional dependency: {TORCH_INSTALL} "
            "(or save the state dict as .npz)"
        ) from None
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ImportFailure(f"cannot read {path} with torch.load: {first_line(e)}") from None
    state_dict = content
    if isinstance(content, Mapping) and isinstance(content.get("model"), Mapping):
        state_dict = content["model"]
        if isinstance(content.get("steps"), int):
            info["steps"] = content["steps"]
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state_dict.values()
    ):
        raise ImportFailure(
            f"{path} is neither the original's checkpoint ({{'model': state_dict, ...}}) "
            "nor a state dict of tensors"
        )
    return {str(k): v.detach().cpu().float().numpy() for k, v in state_dict.items()}


def _check_workdir(workdir: str, overwrite: bool) -> None:
    if os.path.isfile(workdir):
        raise ImportFailure(f"--workdir {workdir} is a file")
    if os.path.isdir(workdir) and os.listdir(workdir) and not overwrite:
        raise ImportFailure(
            f"--workdir {workdir} is not empty; pass --overwrite to replace its checkpoints "
            "and configuration"
        )


def _configured(name: str, default):
    """``train.<name>``'s configured callable (a gin reference resolved), else ``default``."""
    import gin

    try:
        value = gin.query_parameter(f"train.{name}")
    except ValueError:
        return default
    if isinstance(value, gin.config.ConfigurableReference):
        return value.scoped_configurable_fn
    return value


def write_workdir(workdir: str, model, step: int, overwrite: bool) -> str:
    """Writes the parsed configuration and a training-format checkpoint; returns its path."""
    import keras

    from osc_tf import config
    from osc_tf.checkpoints import CHECKPOINT_DIR, Checkpoints
    from osc_tf.factories import train_parameter
    from osc_tf.schedules import WarmupDecay

    # The optimizer train() builds, fresh, at the original's step count.
    schedule = _configured("lr_schedule", WarmupDecay)(
        total_steps=train_parameter("num_steps", 10_000)
    )
    optimizer = _configured("optimizer", keras.optimizers.AdamW)(learning_rate=schedule)
    optimizer.build(model.trainable_variables)
    optimizer.iterations.assign(step)
    if overwrite:
        shutil.rmtree(os.path.join(workdir, CHECKPOINT_DIR), ignore_errors=True)
    config.write(workdir)
    return Checkpoints(workdir, model, optimizer).save(step)


def import_checkpoint(
    checkpoint: str,
    workdir: str,
    gin_files=(),
    gin_params=(),
    base_gin_file: str = BASE_GIN_FILE,
    original_config: str | None = None,
    ignore_original_config: bool = False,
    step: int | None = None,
    overwrite: bool = False,
) -> dict:
    """Imports the original's ``checkpoint`` into a new osc_tf ``workdir``.

    The model is configured by ``base_gin_file``, then the original run's Hydra
    configuration (``original_config``, else found beside the checkpoint, unless
    ``ignore_original_config``), then ``gin_files`` and ``gin_params``. Writes
    ``operative_config.gin``, a checkpoint in the format training writes and
    ``original_import.json``; returns what that file says.

    Raises:
        ImportFailure: naming the file, key or tensors that do not fit.
    """
    _check_workdir(workdir, overwrite)
    state_dict, info = read_checkpoint(checkpoint)
    hydra_path = None
    if not ignore_original_config:
        hydra_path = original_config or find_original_config(checkpoint)
    bindings = []
    if hydra_path:
        bindings = translate_config(read_original_config(hydra_path))
        info["original_config"] = os.path.abspath(hydra_path)
    info["bindings"] = bindings

    from osc_tf import config, training  # noqa: F401  (registers `train`: gin/train.gin binds it)

    with tempfile.TemporaryDirectory() as tmp:
        translated = os.path.join(tmp, "original_config.gin")
        with open(translated, "w") as f:
            f.write("# Translated from the original's Hydra configuration.\n")
            f.write("".join(line + "\n" for line in bindings))
        params = [*gin_params, f"train.workdir = {workdir!r}"]
        try:
            config.parse([base_gin_file, translated, *gin_files], params)
        except config.ConfigError as e:
            raise ImportFailure(str(e)) from None

    from osc_tf.factories import build_data, build_model, train_parameter

    data = build_data()
    model = build_model(train_parameter("seed", 0), data.crop_size)
    try:
        count = import_state_dict(model, state_dict, source=checkpoint)
    except ValueError as e:
        raise ImportFailure(str(e)) from None
    step = step if step is not None else int(info.get("steps", 0))
    os.makedirs(workdir, exist_ok=True)
    path = write_workdir(workdir, model, step, overwrite)
    parameters = sum(int(np.prod(w.shape)) for w in model.weights)
    info.update(step=step, checkpoint=path, tensors=count, parameters=parameters)
    with open(os.path.join(workdir, "original_import.json"), "w") as f:
        json.dump(info, f, indent=2)
    return info
