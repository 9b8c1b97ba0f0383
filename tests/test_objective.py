"""The weighted total (Objective) and the gin files in gin/losses/."""

import pathlib

import gin
import numpy as np
import pytest
import tensorflow as tf

from osc_tf import (
    configurables,  # noqa: F401  (registers the gin names)
    losses,
)

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "osc_tf" / "gin" / "losses"


@pytest.fixture(scope="module")
def outputs():
    rng = np.random.default_rng(0)
    b, k, d = 3, 4, 5
    slots = rng.normal(size=(2 * b, k, d)).astype(np.float32)
    return {
        "global_features": rng.normal(size=(2 * b, d)).astype(np.float32),
        "global_projection": rng.normal(size=(2 * b, d)).astype(np.float32),
        "slots": slots,
        "slot_projection": (slots + rng.normal(size=slots.shape)).astype(np.float32),
        "reconstruction": rng.normal(size=(2 * b, 4, 4, 3)).astype(np.float32),
        "reconstruction_target": rng.normal(size=(2 * b, 4, 4, 3)).astype(np.float32),
    }


@pytest.fixture(autouse=True)
def clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _from_gin(*names: str, params: tuple[str, ...] = ()) -> losses.Objective:
    gin.parse_config_files_and_bindings([str(GIN_DIR / f"{n}.gin") for n in names], params)
    return gin.get_configurable("Objective")()


def test_default_total_keys_and_matching(outputs):
    result = losses.Objective()(outputs)
    assert sorted(result) == ["loss", "loss_global_ctr", "loss_object_ctr_img", "matching"]
    g = losses.global_contrastive(outputs["global_projection"])
    o, cols = losses.object_contrastive_image(outputs["slot_projection"], return_matching=True)
    np.testing.assert_allclose(result["loss_global_ctr"], g)
    np.testing.assert_allclose(result["loss_object_ctr_img"], o)
    np.testing.assert_allclose(result["loss"], g + o, rtol=1e-6)
    assert result["matching"].dtype == np.int32 and result["matching"].shape == (3, 4)
    np.testing.assert_array_equal(result["matching"], cols)


def test_every_gin_file_parses_and_sets_what_it_says(outputs):
    expected = {
        "ctr": ("global_loss", losses.global_contrastive),
        "sim": ("global_loss", losses.global_similarity),
        "ctr_all": ("object_loss", losses.object_contrastive_all),
        "ctr_img": ("object_loss", losses.object_contrastive_image),
        "sim_img": ("object_loss", losses.object_similarity),
        "none": ("object_loss", None),
        "more_global": ("object_weight", 0.05),
        "more_objects": ("global_weight", 0.1),
        "zero_objects": ("object_weight", 0.0),
        "reconstruction": ("reconstruction_loss", losses.reconstruction_mse),
    }
    assert sorted(p.stem for p in GIN_DIR.glob("*.gin")) == sorted(expected)
    for name, (attr, value) in expected.items():
        gin.clear_config()
        objective = _from_gin(name)
        got = getattr(objective, attr)
        if callable(value):
            assert getattr(got, "__wrapped__", got) is value  # gin may wrap the function
        else:
            assert got == value
        assert GIN_DIR.joinpath(f"{name}.gin").read_text().startswith("# ")


def test_presets_weight_the_terms(outputs):
    objective = _from_gin("sim", "ctr_all", "more_global")
    result = objective(outputs)
    assert sorted(result) == ["loss", "loss_global_sim", "loss_object_ctr_all", "matching"]
    want = result["loss_global_sim"] + 0.05 * result["loss_object_ctr_all"]
    np.testing.assert_allclose(result["loss"], want, rtol=1e-6)

    gin.clear_config()
    result = _from_gin("ctr", "sim_img", "more_objects")(outputs)
    want = 0.1 * result["loss_global_ctr"] + result["loss_object_sim_img"]
    np.testing.assert_allclose(result["loss"], want, rtol=1e-6)


def test_zero_objects_logs_the_object_term_but_trains_only_the_global_one(outputs):
    objective = _from_gin("ctr", "ctr_img", "zero_objects")
    tensors = {k: tf.constant(v) for k, v in outputs.items()}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(tensors)
        result = objective(tensors)
    want = losses.object_contrastive_image(outputs["slot_projection"])
    np.testing.assert_allclose(result["loss_object_ctr_img"], want)
    np.testing.assert_allclose(result["loss"], result["loss_global_ctr"])
    assert tape.gradient(result["loss"], tensors["slot_projection"]) is None
    assert tape.gradient(result["loss"], tensors["global_projection"]) is not None


def test_temperature_from_gin(outputs):
    objective = _from_gin("ctr", "ctr_all", params=("global_contrastive.temperature = 0.5",))
    result = objective(outputs)
    want = losses.global_contrastive(outputs["global_projection"], temperature=0.5)
    np.testing.assert_allclose(result["loss_global_ctr"], want)


def test_global_only_model(outputs):
    global_outputs = {k: v for k, v in outputs.items() if k.startswith("global")}
    result = _from_gin("ctr", "none")(global_outputs)
    assert sorted(result) == ["loss", "loss_global_ctr"]
    with pytest.raises(ValueError, match="slot_projection"):
        losses.Objective()(global_outputs)


def test_needs_a_term():
    with pytest.raises(ValueError, match="at least one of global_loss, object_loss"):
        losses.Objective(global_loss=None, object_loss=None)


def test_reconstruction_term_adds_to_the_others(outputs):
    objective = _from_gin("ctr", "ctr_img", "reconstruction")
    assert objective.reconstruction_weight == 20.0
    result = objective(outputs)
    names = ["loss", "loss_global_ctr", "loss_object_ctr_img", "loss_reconstruction_mse"]
    assert sorted(result) == [*names, "matching"]
    error = outputs["reconstruction"] - outputs["reconstruction_target"]
    np.testing.assert_allclose(result["loss_reconstruction_mse"], np.mean(error**2), rtol=1e-6)
    want = result["loss_global_ctr"] + result["loss_object_ctr_img"]
    want += 20.0 * result["loss_reconstruction_mse"]
    np.testing.assert_allclose(result["loss"], want, rtol=1e-6)
    alone = losses.Objective(None, object_loss=None, reconstruction_loss=losses.reconstruction_mse)
    assert sorted(alone(outputs)) == ["loss", "loss_reconstruction_mse"]
    without = {k: v for k, v in outputs.items() if not k.startswith("reconstruction")}
    with pytest.raises(ValueError, match="use a model with a decoder"):
        objective(without)
    with pytest.raises(ValueError, match="set it as Objective.reconstruction_loss"):
        losses.Objective(object_loss=losses.reconstruction_mse)


def test_reconstruction_mse_optimum_and_gradient():
    rng = np.random.default_rng(1)
    target = tf.constant(rng.normal(size=(4, 6, 6, 3)).astype(np.float32))
    assert float(losses.reconstruction_mse(target, target)) == 0.0  # the known optimum
    prediction = tf.Variable(target + 0.5)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(target)
        loss = losses.reconstruction_mse(prediction, target)
    np.testing.assert_allclose(loss, 0.25, rtol=1e-6)
    np.testing.assert_allclose(
        tape.gradient(loss, prediction), np.full(target.shape, 2 * 0.5 / 432), rtol=1e-5
    )
    assert tape.gradient(loss, target) is None  # the target is not trained towards


def test_routing_is_the_table_of_terms(outputs):
    # Each loss reads the outputs TERMS names; a custom loss routed by the table.
    assert losses.TERMS["object_similarity"].inputs == {
        "slot_features": "slots",
        "slot_projections": "slot_projection",
    }
    seen = {}

    def global_contrastive(projections):  # stands in for the registered loss of that name
        seen["projections"] = projections
        return tf.reduce_mean(projections)

    result = losses.Objective(global_loss=global_contrastive, object_loss=None)(outputs)
    assert seen["projections"] is outputs["global_projection"]
    np.testing.assert_allclose(result["loss_global_ctr"], np.mean(outputs["global_projection"]))


def test_a_loss_outside_the_table_or_in_the_wrong_term_fails_at_construction():
    with pytest.raises(ValueError, match="not a loss of osc_tf.losses.TERMS"):
        losses.Objective(global_loss=lambda projections: 0.0)
    with pytest.raises(ValueError, match="set it as Objective.object_loss"):
        losses.Objective(global_loss=losses.object_contrastive_all)
