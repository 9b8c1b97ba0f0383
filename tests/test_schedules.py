"""The learning-rate schedule as a function: values at chosen steps."""

import math

import keras
import numpy as np
import pytest

from osc_tf.schedules import WarmupDecay


def lr(schedule, step):
    return float(schedule(step))


def test_cosine_values_at_chosen_steps():
    s = WarmupDecay(total_steps=100, peak_lr=1.0, end_lr=0.1, warmup_fraction=0.2)
    assert lr(s, 0) == pytest.approx(0.0)
    assert lr(s, 10) == pytest.approx(0.5)  # halfway through warm-up
    assert lr(s, 20) == pytest.approx(1.0)  # peak
    assert lr(s, 60) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through cosine
    assert lr(s, 100) == pytest.approx(0.1)
    assert lr(s, 500) == pytest.approx(0.1)  # beyond the budget: constant


def test_start_factor_and_constant_phase():
    s = WarmupDecay(
        total_steps=1000,
        peak_lr=2.0,
        end_lr=0.5,
        warmup_fraction=0.1,
        decay_fraction=0.4,
        start_factor=0.25,
    )
    assert lr(s, 0) == pytest.approx(0.5)
    assert lr(s, 50) == pytest.approx(0.5 + 1.5 * 0.5)
    decay_quarter = 0.5 + 1.5 * 0.5 * (1 + math.cos(math.pi * 0.25))
    assert lr(s, 200) == pytest.approx(decay_quarter, rel=1e-6)
    for step in (500, 700, 999):
        assert lr(s, step) == pytest.approx(0.5)


def test_exponential_decay_is_geometric():
    s = WarmupDecay(
        total_steps=110, peak_lr=1e-2, end_lr=1e-4, warmup_fraction=10 / 110, decay="exponential"
    )
    assert lr(s, 10) == pytest.approx(1e-2)
    assert lr(s, 60) == pytest.approx(1e-3, rel=1e-5)  # geometric mean halfway
    assert lr(s, 110) == pytest.approx(1e-4, rel=1e-5)


def test_no_warmup_starts_at_peak():
    s = WarmupDecay(total_steps=10, peak_lr=3.0, end_lr=1.0, warmup_fraction=0.0)
    assert lr(s, 0) == pytest.approx(3.0)


def test_monotone_after_warmup():
    s = WarmupDecay(total_steps=300, peak_lr=7e-4, end_lr=3e-4)
    values = np.array([lr(s, i) for i in range(60, 301, 10)])
    assert np.all(np.diff(values) <= 1e-12)


def test_config_round_trip_and_optimizer_use():
    s = WarmupDecay(total_steps=50, peak_lr=1e-3, end_lr=1e-4, decay="exponential")
    clone = WarmupDecay.from_config(s.get_config())
    assert clone.get_config() == s.get_config()
    opt = keras.optimizers.AdamW(learning_rate=s)
    assert float(opt.learning_rate) == pytest.approx(0.0)  # step 0 of the warm-up


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decay": "linear"}, "decay must be one of"),
        ({"warmup_fraction": 1.5}, "warmup_fraction"),
        ({"warmup_fraction": 0.5, "decay_fraction": 0.6}, "decay_fraction"),
        ({"total_steps": 0}, "total_steps"),
    ],
)
def test_bad_arguments_name_the_parameter(kwargs, message):
    kwargs = {"total_steps": 100, **kwargs}
    with pytest.raises(ValueError, match=message):
        WarmupDecay(**kwargs)
