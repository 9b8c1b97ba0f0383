"""The VQA linear probe and its ranking metrics (scikit-learn's, checked on hand-made cases)."""

import numpy as np
import pytest

from osc_tf.evaluation.vqa import average_precision, linear_probe, roc_auc

# ---------------------------------------------------------------- ranking metrics


def test_hand_computed_ap_and_auroc():
    scores, targets = np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])
    assert average_precision(targets, scores) == pytest.approx(1 / 2 + (2 / 3) / 2)
    assert roc_auc(targets, scores) == pytest.approx(3 / 4)
    weight = np.where(targets, 14.0, 1.0)  # precisions 14/14 at recall 1/2, 28/29 at recall 1
    assert average_precision(targets, scores, weight) == pytest.approx(57 / 58)
    assert roc_auc(targets, scores, weight) == pytest.approx(3 / 4)


def test_ties_form_one_threshold():
    scores, targets = np.array([0.5, 0.5, 0.2]), np.array([1, 0, 1])
    # precisions 1/2 at recall 1/2 (the tied pair), 2/3 at recall 1
    assert average_precision(targets, scores) == pytest.approx(7 / 12)
    assert roc_auc(targets, scores) == pytest.approx(1 / 4)  # the tied pair counts 1/2


def test_metrics_equal_pairwise_oracles_with_ties_and_weights():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 1)  # many ties
    targets = rng.random(300) < 0.2 + 0.5 * scores
    for weight in (None, np.where(targets, 14.0, 1.0), rng.random(300) + 0.1):
        w = np.ones(300) if weight is None else weight
        pos, neg = targets, ~targets
        wins = (scores[pos][:, None] > scores[neg][None, :]) + 0.5 * (
            scores[pos][:, None] == scores[neg][None, :]
        )
        auc = (w[pos][:, None] * w[neg][None, :] * wins).sum() / (w[pos].sum() * w[neg].sum())
        at_or_above = scores[None, :] >= scores[:, None]  # [i, j]: j ranked with or above i
        precision_at = (at_or_above * (w * targets)).sum(1) / (at_or_above * w).sum(1)
        ap = (w * targets * precision_at).sum() / (w * targets).sum()
        assert roc_auc(targets, scores, weight) == pytest.approx(auc, abs=1e-12)
        assert average_precision(targets, scores, weight) == pytest.approx(ap, abs=1e-12)


def test_undefined_metrics_are_nan():
    assert np.isnan(average_precision(np.zeros(4), np.arange(4.0)))
    assert np.isnan(roc_auc(np.ones(4), np.arange(4.0)))


# ---------------------------------------------------------------- the probe


def _scenes(rng: np.random.Generator, num: int, slots: int, dim: int = 128, questions: int = 96):
    """Each slot holds one of 96 object types (orthonormal prototypes plus noise); the
    answers are the types present."""
    prototypes = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:questions]  # [Q, D]
    types = rng.integers(0, questions, size=(num, slots))
    answers = np.zeros((num, questions), bool)
    np.put_along_axis(answers, types, True, axis=1)
    slot_features = prototypes[types] + 0.01 * rng.normal(size=(num, slots, dim))
    global_features = answers @ prototypes + 0.1 * rng.normal(size=(num, dim))
    return slot_features, global_features, answers


def test_probe_on_separable_features_reaches_ap_one():
    slots, global_features, answers = _scenes(np.random.default_rng(1), 2000, slots=3)
    for features in (slots, global_features):
        result = linear_probe(features, answers, num_steps=300, learning_rate=0.1, seed=0)
        assert result.metrics["ap"] > 0.99 and result.metrics["ap_weighted"] > 0.99
        assert result.metrics["auroc"] > 0.99
        assert result.metrics["num_train"] == 1500 and result.metrics["num_test"] == 500
        assert result.scores.shape == result.targets.shape == (500, 96)
        assert result.train_loss.shape == result.test_loss.shape == (300,)
        assert result.train_loss[-1] < 0.2 * result.train_loss[0]
        assert result.metrics["loss"] == pytest.approx(result.test_loss[-1], rel=0.2)


def test_probe_on_noise_is_at_the_base_rate():
    rng = np.random.default_rng(2)
    features, answers = rng.normal(size=(1200, 16)), rng.random((1200, 96)) < 1 / 15
    m = linear_probe(features, answers, num_steps=200, learning_rate=1e-2).metrics
    assert m["base_rate"] == pytest.approx(answers[900:].mean())
    assert abs(m["ap"] - m["base_rate"]) < 0.02
    # Positives weighted 14 against ~14 negatives each: a weighted base rate of ~1/2.
    weighted_rate = 14 * m["base_rate"] / (14 * m["base_rate"] + 1 - m["base_rate"])
    assert abs(m["ap_weighted"] - weighted_rate) < 0.05
    assert abs(m["auroc"] - 0.5) < 0.03 and m["auroc_weighted"] == m["auroc"]


def test_probe_is_seeded_and_ignores_slot_order():
    rng = np.random.default_rng(3)
    slots, _, answers = _scenes(rng, 120, slots=4, dim=8, questions=5)
    shuffled = np.take_along_axis(
        slots, rng.permuted(np.tile(np.arange(4), (120, 1)), axis=1)[..., None], 1
    )
    first = linear_probe(slots, answers, num_steps=20, learning_rate=0.05, seed=7)
    again = linear_probe(shuffled, answers, num_steps=20, learning_rate=0.05, seed=7)
    np.testing.assert_allclose(again.scores, first.scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(again.train_loss, first.train_loss, rtol=1e-5)
    other = linear_probe(slots, answers, num_steps=20, learning_rate=0.05, seed=8)
    assert not np.allclose(other.train_loss, first.train_loss)


def test_probe_rejects_bad_inputs():
    with pytest.raises(ValueError, match="features"):
        linear_probe(np.zeros((8, 2, 3, 4)), np.zeros((8, 5)))
    with pytest.raises(ValueError, match="split"):
        linear_probe(np.zeros((1, 4)), np.zeros((1, 5)))


def test_gin_names_configure_the_probe():
    import gin

    import osc_tf.evaluation.run  # noqa: F401  (registers linear_probe)

    gin.parse_config("linear_probe.num_steps = 7\nlinear_probe.train_fraction = 0.5")
    try:
        rng = np.random.default_rng(4)
        result = gin.get_configurable("linear_probe")(
            rng.normal(size=(40, 3)), rng.random((40, 4)) < 0.3
        )
    finally:
        gin.clear_config()
    assert result.train_loss.shape == (7,) and result.metrics["num_train"] == 20
