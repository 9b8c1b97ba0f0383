"""The original study's reference numbers (``<repo>/../shared/parity/``) for the parity tests.

``original_fixtures.npz`` holds arrays computed by running the original PyTorch
code (its layouts and names; ``original_fixtures.md`` documents each one) and
``original_init.json`` the per-parameter initialisation statistics of its
default models. Tests that need them skip, saying why, when the folder is absent.
"""

import functools
import json
import os

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY_DIR = os.path.join(os.path.dirname(REPO), "shared", "parity")
FIXTURES = os.path.join(PARITY_DIR, "original_fixtures.npz")
INIT_STATS = os.path.join(PARITY_DIR, "original_init.json")

#: gin bindings (on top of gin/train.gin) of the tiny end-to-end model of the
#: fixtures (section h): D=16, 2 layers, 2 heads, 3 learned queries, 32x32 crops;
#: patch 8, MLP ratio 2, slot attention (3 iterations, hidden 2·D) and the
#: object projection (hidden 4·D) are gin/train.gin's defaults.
TINY_BINDINGS = (
    "ViT.embed_dim = 16",
    "ViT.num_layers = 2",
    "ViT.num_heads = 2",
    "LearnedQueries.num_slots = 3",
    "MultiObjectData.crop_size = 32",
)
TINY_CROP = 32


def require(path: str = FIXTURES) -> None:
    """Skips the calling test module when the reference files are not there."""
    if not os.path.exists(path):
        pytest.skip(
            f"the original's reference numbers are not at {path} (the shared/parity folder "
            "beside the repository)",
            allow_module_level=True,
        )


@functools.cache
def fixtures() -> dict:
    """Every array of ``original_fixtures.npz`` (read without pickle)."""
    with np.load(FIXTURES, allow_pickle=False) as f:
        return {name: f[name] for name in f.files}


def state_dict(prefix: str) -> dict:
    """The fixture's arrays named ``<prefix>.<name>`` as a state dict ``{name: array}``."""
    start = prefix + "."
    return {k[len(start) :]: v for k, v in fixtures().items() if k.startswith(start)}


@functools.cache
def init_rows() -> list:
    with open(INIT_STATS) as f:
        return json.load(f)


def max_abs(got, want) -> float:
    return float(np.max(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))


def assert_close(name: str, got, want, rtol: float = 1e-5, atol: float = 1e-5) -> float:
    """``np.testing.assert_allclose`` that reports the largest deviation (``pytest -s``)."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    deviation = max_abs(got, want)
    print(f"max |diff| {name}: {deviation:.3g}")
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)
    return deviation
