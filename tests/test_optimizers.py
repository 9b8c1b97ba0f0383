"""TorchAdamW follows torch.optim.AdamW's update, written out here in float64 NumPy."""

import keras
import numpy as np
import pytest

from osc_tf.optimizers import TorchAdamW

LR = [7e-4 * (1e-10 + (1 - 1e-10) * i / 10) for i in range(10)] + [7e-4] * 10  # per step
BETAS, EPS, WD = (0.9, 0.999), 1e-8, 0.05
_TOLERANCE = 8 * np.spacing(np.float32(2.0))  # 8 float32 ulps of values below 2


def _torch_adamw(params, grads):
    """torch.optim.AdamW (amsgrad off), step by step: the documented algorithm."""
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, (lr, step_grads) in enumerate(zip(LR, grads, strict=True), start=1):
        for i, g in enumerate(step_grads):
            params[i] *= 1 - lr * WD
            m[i] = BETAS[0] * m[i] + (1 - BETAS[0]) * g
            v[i] = BETAS[1] * v[i] + (1 - BETAS[1]) * g * g
            denom = np.sqrt(v[i]) / np.sqrt(1 - BETAS[1] ** t) + EPS
            params[i] -= lr / (1 - BETAS[0] ** t) * m[i] / denom
    return params


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    def __call__(self, step):
        return keras.ops.take(keras.ops.convert_to_tensor(LR, "float32"), step)


def _run(optimizer_cls, params, grads):
    variables = [keras.Variable(p) for p in params]
    opt = optimizer_cls(
        learning_rate=_Schedule(), beta_1=BETAS[0], beta_2=BETAS[1], epsilon=EPS, weight_decay=WD
    )
    for step_grads in grads:
        opt.apply_gradients(
            zip([keras.ops.convert_to_tensor(g) for g in step_grads], variables, strict=True)
        )
    return [np.array(v) for v in variables]


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    params = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)]
    # gradients spanning 1e-8 .. 1 (tiny ones are where epsilon placement shows)
    scales = [10.0 ** rng.uniform(-8, 0, size=p.shape) for p in params]
    grads = [
        [
            (rng.normal(size=p.shape) * s).astype(np.float32)
            for p, s in zip(params, scales, strict=True)
        ]
        for _ in LR
    ]
    return params, grads


def test_torch_adamw_matches_the_torch_update(problem):
    params, grads = problem
    want = _torch_adamw(params, grads)
    got = _run(TorchAdamW, params, grads)
    for w, g in zip(want, got, strict=True):
        # float32 parameters against a float64 reference: a few float32 ulps after 20 steps
        np.testing.assert_allclose(g, w, rtol=0, atol=_TOLERANCE)


def test_keras_adamw_is_measurably_different(problem):
    """The reference is sensitive enough to tell Keras' epsilon placement apart."""
    params, grads = problem
    want = _torch_adamw(params, grads)
    got = _run(keras.optimizers.AdamW, params, grads)
    worst = max(np.max(np.abs(g - w)) for g, w in zip(got, want, strict=True))
    assert worst > 100 * _TOLERANCE


def test_amsgrad_is_refused():
    with pytest.raises(ValueError, match="amsgrad"):
        TorchAdamW(amsgrad=True)
