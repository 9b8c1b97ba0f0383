"""ObjectCentricModel built from the gin files: every composition, contracts, save/load."""

import os
import pathlib

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import osc_tf.configurables  # noqa: F401  (registers the gin names)
from osc_tf import config
from osc_tf.layers.heads import MLPHead
from osc_tf.layers.mask_decoder import MaskDecoder
from osc_tf.layers.queries import LearnedQueries
from osc_tf.layers.slot_attention import SlotAttention
from osc_tf.layers.vit import ViT
from osc_tf.model import ObjectCentricModel

REPO = pathlib.Path(__file__).resolve().parents[1]
gin.add_config_file_search_path(str(REPO))  # gin includes are relative to the repository root

B, SIZE, K, D = 2, 32, 4, 16
N = (SIZE // 8) ** 2
IMAGES = np.random.default_rng(0).normal(size=(B, SIZE, SIZE, 3)).astype("float32")
TINY = [
    f"ViT.embed_dim = {D}",
    "ViT.num_layers = 1",
    "ViT.num_heads = 2",
    f"LearnedQueries.num_slots = {K}",
    f"GaussianQueries.num_slots = {K}",
    f"KMeansQueries.num_slots = {K}",
    "KMeansQueries.max_iters = 5",
    "SlotAttention.num_iters = 2",
    "CrossAttentionDecoder.num_layers = 1",
    "CrossAttentionDecoder.num_heads = 2",
    "CoAttentionDecoder.num_heads = 2",
]
QUERIES = ["learned", "gaussian", "gaussian_mixture", "kmeans_euclidean", "kmeans_cosine"]
OBJECT_FNS = ["slot_attention", "cross_attention", "co_attention"]
# Every query and object function appears in the default run; the full sweep is slow.
DEFAULT_COMBINATIONS = {
    ("parallel", "learned", "slot_attention"),
    ("parallel", "gaussian", "cross_attention"),
    ("parallel", "kmeans_cosine", "co_attention"),
    ("slots_to_global", "gaussian_mixture", "slot_attention"),
    ("slots_to_global", "kmeans_euclidean", "cross_attention"),
    ("slots_to_global", "learned", "co_attention"),
}


def build_model(architecture, queries=None, object_fn=None, bindings=(), tiny=True):
    """An ObjectCentricModel from gin/model files (+ tiny sizes), the way training builds it."""
    files = [
        f"gin/model/architecture/{architecture}.gin",
        "gin/model/backbone/d32_l2_h4.gin",
        "gin/model/backbone/patch8.gin",
    ]
    files += [f"gin/model/queries/{queries}.gin"] if queries else []
    files += [f"gin/model/obj_fn/{object_fn}.gin"] if object_fn else []
    gin.clear_config()
    try:
        gin.add_config_file_search_path(config.GIN_BASE)  # includes: the package's gin/
        gin.parse_config_files_and_bindings(
            [config.resolve(f) for f in files],
            (TINY if tiny else []) + list(bindings),
            finalize_config=False,
        )
        return gin.get_configurable("ObjectCentricModel")()
    finally:
        gin.clear_config()


def _combinations():
    yield pytest.param("global_only", None, None, id="global_only")
    for architecture in ("parallel", "slots_to_global"):
        for queries in QUERIES:
            for object_fn in OBJECT_FNS:
                combination = (architecture, queries, object_fn)
                marks = () if combination in DEFAULT_COMBINATIONS else pytest.mark.slow
                yield pytest.param(*combination, marks=marks, id="-".join(combination))


@pytest.mark.parametrize("architecture, queries, object_fn", _combinations())
def test_every_composition_runs_forward_and_backward(architecture, queries, object_fn):
    model = build_model(architecture, queries, object_fn)
    with tf.GradientTape() as tape:
        outputs = model(IMAGES, training=True)
        loss = sum(tf.reduce_mean(tf.square(v)) for v in outputs.values())
    expected = {
        "backbone_tokens": (B, N, D),
        "global_features": (B, D),
        "global_projection": (B, D),
    }
    if object_fn:
        steps = {"slot_attention": 2, "cross_attention": 1, "co_attention": 2}[object_fn]
        expected.update(slots=(B, K, D), slot_projection=(B, K, D), attention=(B, K, N))
        expected.update(attention_steps=(B, steps, K, N))
    assert {key: tuple(v.shape) for key, v in outputs.items()} == expected
    if object_fn:
        np.testing.assert_array_equal(outputs["attention_steps"][:, -1], outputs["attention"])
    assert all(v.dtype == "float32" and np.all(np.isfinite(v)) for v in outputs.values())
    grads = tape.gradient(loss, model.trainable_weights)
    no_gradient = [w.path for w, g in zip(model.trainable_weights, grads, strict=True) if g is None]
    assert not no_gradient
    assert all(np.all(np.isfinite(g)) for g in grads)
    if object_fn:
        attention = np.array(model(IMAGES)["attention"])
        axis = 1 if object_fn == "slot_attention" else 2  # over slots, or over tokens
        np.testing.assert_allclose(attention.sum(axis=axis), 1.0, rtol=1e-5)


def test_default_gin_is_the_original_study():
    gin.clear_config()
    try:
        gin.add_config_file_search_path(config.GIN_BASE)
        gin.parse_config_files_and_bindings(
            [config.resolve("gin/model/default.gin")], [], finalize_config=False
        )
        model = gin.get_configurable("ObjectCentricModel")()
    finally:
        gin.clear_config()
    vit = model.backbone.get_config()
    assert (vit["patch_size"], vit["embed_dim"], vit["num_layers"], vit["num_heads"]) == (
        8,
        64,
        4,
        4,
    )
    assert vit["mlp_ratio"] == 2.0 and vit["pooling"] == "avg" and vit["pos_embed_every_layer"]
    assert model.global_from_slots and model.queries.num_slots == 11
    assert isinstance(model.object_fn, SlotAttention) and model.object_fn.num_iters == 3
    assert model.object_fn.hidden_mult == 2.0
    heads = [(h.hidden_mult, h.out_bias) for h in (model.global_fn, model.global_proj)]
    assert heads == [(2.0, True), (2.0, False)]
    assert (model.object_proj.hidden_mult, model.object_proj.out_bias) == (4.0, False)
    outputs = model(np.zeros((1, 64, 64, 3), "float32"))
    assert outputs["slot_projection"].shape == (1, 11, 64)  # E defaults to D
    assert outputs["global_projection"].shape == (1, 64)


def test_composition_values():
    """The global branch reads what the architecture says it reads."""
    slots_model = build_model("slots_to_global", "learned", "slot_attention")
    out = slots_model(IMAGES)
    from_slots = slots_model.global_fn(np.mean(out["slots"], axis=1))
    np.testing.assert_allclose(out["global_features"], from_slots, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        out["slot_projection"], slots_model.object_proj(out["slots"]), rtol=1e-5, atol=1e-6
    )

    parallel = build_model("parallel", "learned", "cross_attention")
    out = parallel(IMAGES)
    pooled = parallel.backbone(IMAGES)["pooled"]  # the CLS token
    np.testing.assert_allclose(out["global_features"], parallel.global_fn(pooled), rtol=1e-5)

    positional = build_model(
        "parallel", "learned", "slot_attention", ["ObjectCentricModel.object_pos_embedding = True"]
    )
    out = positional(IMAGES)
    tokens = out["backbone_tokens"]
    queries = positional.queries(tokens)
    pos = positional.backbone.positional_embedding(SIZE, SIZE)
    slots, attention = positional.object_fn(queries, tokens + pos)
    np.testing.assert_allclose(out["slots"], slots, rtol=1e-5, atol=1e-6)
    without, _ = positional.object_fn(queries, tokens)
    assert not np.allclose(without, slots)


def test_num_slots_at_call_time():
    for queries in ("gaussian", "kmeans_cosine"):
        model = build_model("slots_to_global", queries, "cross_attention")
        outputs = model(IMAGES, num_slots=7)
        assert outputs["slots"].shape == (B, 7, D) and outputs["attention"].shape == (B, 7, N)
        assert outputs["slot_projection"].shape == (B, 7, D)
    learned = build_model("slots_to_global", "learned", "slot_attention")
    assert learned(IMAGES, num_slots=K)["slots"].shape == (B, K, D)
    with pytest.raises(ValueError, match=f"fixed number of slots K={K}; num_slots=7"):
        learned(IMAGES, num_slots=7)


def test_save_load_and_config_round_trip(tmp_path):
    model = build_model(
        "slots_to_global",
        "gaussian_mixture",
        "co_attention",
        [
            "ObjectCentricModel.global_pool = @CrossAttentionPool()",
            "CrossAttentionPool.num_heads = 2",
        ],
    )
    outputs = model(IMAGES)
    config = model.get_config()
    assert ObjectCentricModel.from_config(config).get_config() == config
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ObjectCentricModel) and loaded.global_pool is not None
    reloaded = loaded(IMAGES)
    for key, value in outputs.items():
        np.testing.assert_array_equal(reloaded[key], value, err_msg=key)


DECODER = ["ObjectCentricModel.decoder = @MaskDecoder()", "MaskDecoder.hidden = 16"]


@pytest.mark.parametrize("object_fn", ["slot_attention", "cross_attention"])
@pytest.mark.parametrize("queries", ["learned", "gaussian", "kmeans_cosine"])
def test_decoder_trains_with_every_query_type_and_object_function(queries, object_fn):
    """A few steps of ctr + ctr_img + reconstruction: finite losses, masks summing to 1."""
    from osc_tf.losses import Objective, reconstruction_mse

    model = build_model("slots_to_global", queries, object_fn, DECODER)
    model(IMAGES)  # builds the weights
    model.compile(keras.optimizers.Adam(1e-3), Objective(reconstruction_loss=reconstruction_mse))
    rng = np.random.default_rng(1)
    views = IMAGES + 0.1 * rng.normal(size=IMAGES.shape).astype("float32")
    batch = {"images": tf.constant(np.concatenate([IMAGES, views]))}  # two views of B images
    before = [np.array(w) for w in model.decoder.trainable_weights]
    for _ in range(3):
        logs = model.train_step(batch)
        names = ["loss", "loss_global_ctr", "loss_object_ctr_img", "loss_reconstruction_mse"]
        assert all(np.isfinite(float(logs[k])) for k in names)
    weights = model.decoder.trainable_weights
    assert all(not np.array_equal(w, b) for w, b in zip(weights, before, strict=True))
    outputs = model(IMAGES)
    assert outputs["masks"].shape == (B, K, SIZE, SIZE)
    assert outputs["reconstruction"].shape == (B, SIZE, SIZE, 3)
    np.testing.assert_allclose(np.sum(outputs["masks"], axis=1), 1.0, rtol=1e-5)
    if queries == "gaussian":  # any K at call time
        assert model(IMAGES, num_slots=7)["masks"].shape == (B, 7, SIZE, SIZE)
    config = model.get_config()
    assert ObjectCentricModel.from_config(config).get_config() == config


def test_decoding_the_first_view_only():
    """decoder_views=1: when training, the decoder sees the first half of the rows (the
    first view) and gives the same reconstruction as both views' first half; the
    reconstruction term is that half's mean error; inference still decodes every row."""
    from osc_tf.losses import Objective, reconstruction_mse

    both = build_model("slots_to_global", "learned", "slot_attention", DECODER)
    first = build_model(
        "slots_to_global",
        "learned",
        "slot_attention",
        [*DECODER, "ObjectCentricModel.decoder_views = 1"],
    )
    views = np.concatenate([IMAGES, IMAGES[::-1]])  # [2B]: view 0 rows, then view 1
    full = both(views, training=True)
    first(views)  # builds the weights
    first.set_weights(both.get_weights())
    half = first(views, training=True)
    assert half["reconstruction"].shape == (B, SIZE, SIZE, 3)
    for key in ("reconstruction", "reconstruction_target", "masks"):
        np.testing.assert_allclose(half[key], full[key][:B], rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(half["slots"], full["slots"], rtol=1e-6)  # every row encoded
    error = np.mean((full["reconstruction"][:B] - full["reconstruction_target"][:B]) ** 2)
    terms = Objective(reconstruction_loss=reconstruction_mse)(half)
    np.testing.assert_allclose(terms["loss_reconstruction_mse"], error, rtol=1e-5)
    assert first(views)["masks"].shape == (2 * B, K, SIZE, SIZE)  # inference: every row
    assert first.get_config()["decoder_views"] == 1
    vit, head = ViT(embed_dim=D, num_layers=1, num_heads=2), MLPHead()
    with pytest.raises(ValueError, match="decoder_views"):
        ObjectCentricModel(vit, head, MLPHead(), decoder_views=3)


def test_invalid_compositions_fail_loudly():
    vit, head = ViT(embed_dim=D, num_layers=1, num_heads=2), MLPHead()
    with pytest.raises(ValueError, match="missing: \\['object_fn', 'object_proj'\\]"):
        ObjectCentricModel(vit, head, MLPHead(), queries=LearnedQueries(K))
    with pytest.raises(ValueError, match="need an object branch"):
        ObjectCentricModel(vit, head, MLPHead(), global_from_slots=True)
    with pytest.raises(ValueError, match="decoder need an object branch"):
        ObjectCentricModel(vit, head, MLPHead(), decoder=MaskDecoder())
    with pytest.raises(ValueError, match="pooling='avg'"):
        ObjectCentricModel(
            ViT(pooling="cls"), head, MLPHead(), LearnedQueries(), SlotAttention(), MLPHead(), True
        )
    with pytest.raises(ValueError, match="FooQueries"):
        build_model(
            "parallel", None, "slot_attention", ["ObjectCentricModel.queries = @FooQueries()"]
        )
    with pytest.raises(ValueError, match="distance"):
        build_model(
            "parallel", "kmeans_cosine", "slot_attention", ["KMeansQueries.distance = 'l1'"]
        )


def test_xla_forward_and_backward_match_eager():
    model = build_model("slots_to_global", "kmeans_euclidean", "slot_attention")
    eager = model(IMAGES)

    @tf.function(jit_compile=True)
    def step(images):
        with tf.GradientTape() as tape:
            # Inference mode: the k-means initial tokens come from the fixed seed, as eagerly.
            outputs = model(images, training=False)
            loss = tf.add_n([tf.reduce_mean(tf.square(v)) for v in outputs.values()])
        return outputs, tape.gradient(loss, model.trainable_variables)

    outputs, grads = step(IMAGES)
    for key, value in eager.items():
        np.testing.assert_allclose(outputs[key], value, rtol=1e-4, atol=1e-4, err_msg=key)
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("object_fn", ["slot_attention", "cross_attention"])
def test_compiled_parts_train_like_the_op_by_op_model(object_fn):
    """compile(jit_compile_parts=...): the same losses and updated weights as the model
    run op by op, in training steps only (inference calls the layers); bad names fail."""
    from osc_tf.losses import Objective, reconstruction_mse

    views = np.concatenate([IMAGES, IMAGES[::-1]])  # two views of B images
    models, logs = {}, {}
    for parts in ((), ("backbone", "object_fn")):
        model = build_model("slots_to_global", "learned", object_fn, DECODER)
        model(IMAGES)  # builds the weights
        if parts:
            model.set_weights(models[()].get_weights())
        model.compile(
            keras.optimizers.SGD(0.1),
            Objective(reconstruction_loss=reconstruction_mse),
            jit_compile_parts=parts,
        )
        models[parts] = model
    for parts, model in models.items():
        step = tf.function(model.train_step)
        logs[parts] = [step({"images": tf.constant(views)}) for _ in range(2)]
    plain, compiled = models[()], models[("backbone", "object_fn")]
    assert set(compiled.__dict__["_jit_parts"]) == {"backbone", "object_fn"}
    for name in ("backbone", "object_fn"):  # traced once, for training only
        assert compiled.__dict__["_jit_parts"][name].experimental_get_tracing_count() == 1
    for ours, theirs in zip(logs[("backbone", "object_fn")], logs[()], strict=True):
        for key in ours:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-4, err_msg=key)
    for ours, theirs in zip(compiled.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    compiled(IMAGES)  # inference does not call the compiled parts
    assert compiled.__dict__["_jit_parts"]["backbone"].experimental_get_tracing_count() == 1
    odd = compiled(views[:3], training=True)  # halves need an even batch: one call here
    assert odd["slots"].shape[0] == 3 and np.all(np.isfinite(odd["slots"]))
    with pytest.raises(ValueError, match="jit_compile_parts.*'decoder'"):
        compiled.compile(keras.optimizers.SGD(0.1), Objective(), jit_compile_parts=("decoder",))
    from osc_tf.training import resolve_jit_parts

    assert resolve_jit_parts(None) == ("object_fn",)
    with pytest.raises(ValueError, match="train.jit_compile_parts.*'backbone'"):
        resolve_jit_parts("backbone")


def test_traced_with_unknown_batch_serves_any_batch():
    model = build_model("parallel", "gaussian_mixture", "slot_attention")
    serve = tf.function(
        lambda images: model(images),
        input_signature=[tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32)],
    )
    concrete = serve.get_concrete_function()
    assert all(t.shape[0] is None for t in concrete.structured_outputs.values())
    single = serve(IMAGES[:1])
    assert single["slots"].shape == (1, K, D)
    triple = np.concatenate([IMAGES, IMAGES[:1]])
    # atol: a projection entry near 0 (1.3e-4) differed by 5.6e-9 between graph and eager
    np.testing.assert_allclose(
        serve(triple)["global_projection"],
        model(triple)["global_projection"],
        rtol=1e-5,
        atol=1e-7,
    )


def test_mixed_bfloat16_model_is_close_to_float32():
    reference_model = build_model("slots_to_global", "learned", "slot_attention")
    reference = reference_model(IMAGES)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_model("slots_to_global", "learned", "slot_attention")
        mixed(IMAGES)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.backbone.compute_dtype == "bfloat16"
    mixed.set_weights(reference_model.get_weights())
    outputs = mixed(IMAGES)
    for key, value in reference.items():
        assert outputs[key].dtype == "float32"
        scale = np.abs(value).max()
        np.testing.assert_allclose(outputs[key], value, atol=0.03 * scale, rtol=0, err_msg=key)


def test_weights_are_created_under_a_distribution_strategy():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = build_model("parallel", "gaussian", "cross_attention")
        model.build((None, SIZE, SIZE, 3))
    assert model.built and len(model.trainable_weights) > 0
    assert all(
        isinstance(w.value, tf.distribute.DistributedValues) for w in model.trainable_weights
    )
    per_replica = strategy.run(lambda x: model(x)["slots"], args=(tf.constant(IMAGES),))
    assert strategy.experimental_local_results(per_replica)[0].shape == (B, K, D)
