"""Weight initialisation schemes, chosen by name (a gin-friendly string per layer).

The defaults reproduce the original study (PyTorch + timm 0.5.4), parameter by
parameter (``../shared/parity/original_init.md``; tests/test_init_parity.py):

- ``"torch"``: PyTorch's default for ``nn.Linear``/``nn.Conv2d``: kernel and bias
  both ``U(±1/sqrt(fan_in))`` (kaiming_uniform with a=sqrt(5)). The original's
  heads, slot attention and patch embedding keep it.
- ``"vit"``: timm's ViT init, applied by the original to its backbone and its
  cross-attention decoder: kernel ``N(0, 0.02²)`` (timm truncates at ±2 in
  absolute value, i.e. 100 std, which never happens) and zero bias. Not Keras'
  ``TruncatedNormal(stddev=0.02)``, which cuts at 2 std and so has std 0.0176.
- any other string: a Keras initializer name for the kernel (e.g.
  ``"glorot_uniform"``, Keras' default) and a zero bias.

Token tables (positional embedding, learned queries) are ``N(0, 0.02²)`` like
timm's ``trunc_normal_(std=0.02)``; ``TOKEN_STDDEV``.
"""

from __future__ import annotations

import math

import keras

TOKEN_STDDEV = 0.02
SCHEMES = ("torch", "vit")


def kernel_and_bias(scheme: str, fan_in: int) -> tuple:
    """The ``(kernel_initializer, bias_initializer)`` of a layer with ``fan_in`` inputs.

    New instances on every call: a Keras 3 initializer without a seed fixes one at
    construction, so one instance given to two weights draws the same values twice.

    Args:
        scheme: ``"torch"``, ``"vit"`` or a Keras initializer name.
        fan_in: inputs per output unit (Dense: input width; Conv2D: kh·kw·C_in).
    """
    if scheme == "torch":
        bound = 1.0 / math.sqrt(fan_in)
        # VarianceScaling(1/3, fan_in, uniform) is U(±sqrt(3·(1/3)/fan_in)) = U(±1/sqrt(fan_in)).
        kernel = keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")
        return kernel, keras.initializers.RandomUniform(-bound, bound)
    if scheme == "vit":
        return keras.initializers.RandomNormal(stddev=TOKEN_STDDEV), "zeros"
    try:
        return keras.initializers.get(scheme), "zeros"
    except ValueError as e:
        raise ValueError(
            f"unknown initialisation scheme {scheme!r}: use one of {SCHEMES} or a Keras "
            "initializer name such as 'glorot_uniform'"
        ) from e


def check(scheme: str, owner: str) -> str:
    """Fails at construction, naming ``owner``, on an unknown scheme; returns it."""
    if not isinstance(scheme, str):
        raise TypeError(f"{owner}: an initialisation scheme is a string, got {scheme!r}")
    try:
        kernel_and_bias(scheme, 1)
    except ValueError as e:
        raise ValueError(f"{owner}: {e}") from None
    return scheme


def dense(units: int, fan_in: int, scheme: str, use_bias: bool = True, **kwargs):
    """A ``keras.layers.Dense`` with the scheme's kernel and bias initialisers."""
    kernel, bias = kernel_and_bias(scheme, fan_in)
    return keras.layers.Dense(
        units, use_bias=use_bias, kernel_initializer=kernel, bias_initializer=bias, **kwargs
    )


def token_table() -> keras.initializers.Initializer:
    """``N(0, 0.02²)``: positional embeddings, learned queries, CLS token."""
    return keras.initializers.RandomNormal(stddev=TOKEN_STDDEV)
