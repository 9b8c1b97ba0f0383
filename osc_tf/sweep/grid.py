"""A sweep's runs: the cartesian product of ``--grid`` axes, one workdir each.

An axis is ``KEY=V1,V2,...`` (values split at commas outside brackets and quotes):

- a gin binding when its values are gin values: ``ViT.num_layers=2,4,6`` gives the
  bindings ``ViT.num_layers = 2`` etc.;
- a group of gin files when every value ends in ``.gin``:
  ``losses=gin/losses/more_objects.gin,gin/losses/more_global.gin``; KEY is then
  only a label and each run includes one of the files.

A run's configuration is the sweep's gin files, then its axis files (in axis
order), then the sweep's fixed bindings, then its axis bindings, then
``train.workdir``. Its name lists every axis as ``key=value`` (files by their stem),
joined by commas, e.g. ``losses=more_objects,ViT.num_layers=2``: the same
overrides always give the same workdir, so re-running a sweep finds its runs.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
from collections.abc import Sequence

from osc_tf import config

_UNSAFE = re.compile(r"[^A-Za-z0-9._+@%-]+")
_CLOSING = {"(": ")", "[": "]", "{": "}"}


@dataclasses.dataclass(frozen=True)
class Axis:
    """One ``--grid`` entry: a gin binding's values, or alternative gin files."""

    key: str
    values: tuple[str, ...]
    files: bool

    def label(self, value: str) -> str:
        """How ``value`` appears in run names: a file's stem, or the value made path-safe."""
        text = os.path.splitext(os.path.basename(value))[0] if self.files else value
        return _UNSAFE.sub("_", text.strip().strip("'\"")).strip("_") or "_"


@dataclasses.dataclass(frozen=True)
class Run:
    """One run of a sweep.

    Attributes:
        name: directory name under the sweep directory, from ``overrides``.
        workdir: absolute path of the run's workdir.
        overrides: axis key → value (a gin value, or a gin file path).
        gin_files: every gin file of the run, in parse order.
        gin_params: every binding of the run, in parse order (``train.workdir`` last).
        index: position in the sweep's product (display order).
    """

    name: str
    workdir: str
    overrides: dict
    gin_files: tuple[str, ...]
    gin_params: tuple[str, ...]
    index: int = 0


def split_values(text: str) -> list[str]:
    """Splits at commas that are outside brackets and quotes: ``'(1, 2),3'`` → 2 values."""
    values, depth, quote, start = [], [], None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in _CLOSING:
            depth.append(_CLOSING[char])
        elif depth and char == depth[-1]:
            depth.pop()
        elif char == "," and not depth:
            values.append(text[start:i].strip())
            start = i + 1
    if quote or depth:
        raise ValueError(f"unbalanced quotes or brackets in grid values {text!r}")
    values.append(text[start:].strip())
    if any(not v for v in values):
        raise ValueError(f"empty value in grid values {text!r}")
    return values


def parse_axis(text: str) -> Axis:
    """``'KEY=V1,V2'`` → ``Axis`` (see the module docstring)."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    if not sep or not key or not rest.strip():
        raise ValueError(f"--grid must look like 'KEY=V1,V2,...', got {text!r}")
    values = split_values(rest)
    is_file = [v.endswith(".gin") for v in values]
    if any(is_file) and not all(is_file):
        raise ValueError(f"--grid {text!r} mixes gin files and values")
    if len(set(values)) != len(values):
        raise ValueError(f"--grid {text!r} repeats a value")
    axis = Axis(key, tuple(values), all(is_file))
    if axis.files:
        labels = [axis.label(v) for v in values]
        if len(set(labels)) != len(labels):
            raise ValueError(f"--grid {text!r}: two files have the same name")
    return axis


def plan(
    gin_files: Sequence[str],
    gin_params: Sequence[str],
    grids: Sequence[str],
    sweep_dir: str,
) -> list[Run]:
    """Every run of the sweep, in product order (the last axis varies fastest).

    Gin files are resolved to absolute paths (jobs may start elsewhere).

    Raises:
        ValueError: on a malformed axis, two axes with the same key, or two runs
            whose names collide.
        config.ConfigError: when a gin file does not exist.
    """
    axes = [parse_axis(g) for g in grids]
    keys = [a.key for a in axes]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two --grid axes have the same key: {keys}")
    sweep_dir = os.path.abspath(sweep_dir)
    base_files = [config.resolve(f) for f in gin_files]
    runs, names = [], set()
    for index, choice in enumerate(itertools.product(*(a.values for a in axes))):
        pairs = list(zip(axes, choice, strict=True))
        name = ",".join(f"{a.key}={a.label(v)}" for a, v in pairs) or "run"
        if name in names:
            raise ValueError(f"two runs of the sweep would share the workdir name {name!r}")
        names.add(name)
        workdir = os.path.join(sweep_dir, name)
        files = base_files + [config.resolve(v) for a, v in pairs if a.files]
        params = list(gin_params) + [f"{a.key} = {v}" for a, v in pairs if not a.files]
        params.append(f"train.workdir = {workdir!r}")
        overrides = {a.key: v for a, v in pairs}
        runs.append(Run(name, workdir, overrides, tuple(files), tuple(params), index))
    return runs
