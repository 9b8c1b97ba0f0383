"""Importing the original's weights: ``osc_tf.original``, ``scripts/import_original.py``
and ``osc_tf.load_model``, checked on the tiny end-to-end model of the original's
fixtures (``../shared/parity/original_fixtures.md`` section h). Never needs torch."""

import json
import os
import types

import gin
import numpy as np
import pytest
import scipy.special
import tensorflow as tf
import yaml

import osc_tf
from osc_tf import config, losses, original
from osc_tf.checkpoints import Checkpoints
from osc_tf.factories import build_model, train_parameter
from osc_tf.layers.decoders import CrossAttentionDecoder
from osc_tf.layers.queries import KMeansQueries
from osc_tf.layers.vit import ViT
from scripts import evaluate as evaluate_script
from scripts import export as export_script
from scripts import import_original as script
from tests import parity_data
from tests.parity_data import TINY_BINDINGS, TINY_CROP, assert_close

parity_data.require()
F = parity_data.fixtures()
TINY = {"rtol": 1e-4, "atol": 1e-5}  # the fixtures' suggestion for tiny_*


def tiny_state_dict() -> dict:
    return parity_data.state_dict("tiny_sd")


def tiny_images() -> np.ndarray:
    return np.transpose(F["tiny_images"], (0, 2, 3, 1))  # NCHW -> NHWC


def tiny_model(*extra_files, bindings=(), build=True):
    """The tiny model configured by gin/train.gin + TINY_BINDINGS (+ more), built or not."""
    config.parse(["gin/train.gin", *extra_files], [*TINY_BINDINGS, *bindings])
    if build:
        return build_model(0, TINY_CROP)
    return gin.get_configurable("ObjectCentricModel")()


def weights(model) -> list:
    return [w.numpy() for w in model.weights]


@pytest.fixture(scope="module")
def tiny():
    """The tiny model holding the fixture's weights, and its outputs on the fixture's images."""
    model = tiny_model()
    count = original.import_state_dict(model, tiny_state_dict())
    outputs = {k: v.numpy() for k, v in model(tiny_images()).items()}
    return types.SimpleNamespace(model=model, count=count, outputs=outputs)


# --- osc_tf.original on the tiny model ----------------------------------------------------------


def test_tiny_model_from_gin_reproduces_the_original(tiny):
    assert tiny.count == 53
    patches = tiny.model.backbone.patch_embed(tiny_images()).numpy().reshape(4, 16, 16)
    assert_close("tiny_patch_tokens", patches, F["tiny_patch_tokens"], **TINY)
    out = tiny.outputs
    for ours, theirs in (
        ("backbone_tokens", "tiny_out_f_backbone"),
        ("slots", "tiny_out_f_slots"),
        ("slot_projection", "tiny_out_p_slots"),
        ("global_features", "tiny_out_f_global"),
        ("global_projection", "tiny_out_p_global"),
    ):
        assert_close(theirs, out[ours], F[theirs], **TINY)
    assert_close(
        "tiny_loss_global_ctr",
        losses.global_contrastive(out["global_projection"], 0.1),
        F["tiny_loss_global_ctr"],
        **TINY,
    )
    assert_close(
        "tiny_loss_objects_ctr_img",
        losses.object_contrastive_image(out["slot_projection"], 0.1),
        F["tiny_loss_objects_ctr_img"],
        **TINY,
    )


def test_export_state_dict_gives_back_the_imported_tensors(tiny):
    given = tiny_state_dict()
    exported = original.export_state_dict(tiny.model)
    assert sorted(exported) == sorted(given)
    for name, value in given.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


def test_one_error_names_every_missing_unexpected_and_misshaped_tensor(tiny):
    before = weights(tiny.model)
    sd = tiny_state_dict()
    del sd["obj_fn.gru.bias_hh"]
    del sd["backbone.attn_blocks.1.norm2.weight"]
    sd["backbone.cls_token"] = np.zeros(16, np.float32)
    sd["obj_fn.extra.weight"] = np.zeros((2, 2), np.float32)
    sd["obj_queries.tokens"] = np.zeros((4, 16), np.float32)  # 4 queries, the model has 3
    sd["backbone.pos_embed.embed"] = sd["backbone.pos_embed.embed"][None]  # not broadcast
    sd["global_fn.fc1.bias"] = np.full(32, np.nan, np.float32)
    with pytest.raises(ValueError) as error:
        original.import_state_dict(tiny.model, sd, source="ckpt.npz")
    message = str(error.value)
    assert message.startswith("cannot import ckpt.npz: 7 tensor(s)")
    for line in (
        "missing: obj_fn.gru.bias_hh (expected [48])",
        "missing: backbone.attn_blocks.1.norm2.weight (expected [16])",
        "unexpected: backbone.cls_token (shape [16])",
        "unexpected: obj_fn.extra.weight (shape [2, 2])",
        "mis-shaped: obj_queries.tokens: expected [3, 16], given [4, 16]",
        "mis-shaped: backbone.pos_embed.embed: expected [16, 16], given [1, 16, 16]",
        "non-finite values: global_fn.fc1.bias",
    ):
        assert line in message, message
    for got, want in zip(weights(tiny.model), before, strict=True):  # nothing was assigned
        np.testing.assert_array_equal(got, want)


def test_a_shared_positional_embedding_must_be_the_same_tensor():
    """obj_fn.pos_embed 'backbone': the original lists the backbone's table twice."""
    model = tiny_model(bindings=["ObjectCentricModel.object_pos_embedding = True"])
    sd = tiny_state_dict()
    with pytest.raises(
        ValueError, match=r"missing: obj_fn\.pos_embed\.embed \(expected \[16, 16\]"
    ):
        original.import_state_dict(model, sd)
    sd["obj_fn.pos_embed.embed"] = sd["backbone.pos_embed.embed"] + 1.0
    with pytest.raises(ValueError, match="obj_fn.pos_embed.embed differs from backbone"):
        original.import_state_dict(model, sd)
    sd["obj_fn.pos_embed.embed"] = sd["backbone.pos_embed.embed"]
    assert original.import_state_dict(model, sd) == 54


@pytest.mark.parametrize(
    "files, bindings, message",
    [
        (["gin/model/obj_fn/co_attention.gin"], [], "object_fn is a CoAttentionDecoder"),
        ([], ["ViT.output_norm = True"], "no final LayerNorm"),
        (
            ["gin/model/obj_fn/cross_attention.gin"],
            ["CrossAttentionDecoder.reuse_layers = True"],
            "reuse_layers",
        ),
        ([], ["ObjectCentricModel.global_pool = @CrossAttentionPool()"], "CrossAttentionPool"),
    ],
)
def test_parts_without_a_counterpart_are_named(files, bindings, message):
    model = tiny_model(*files, bindings=bindings, build=False)
    with pytest.raises(ValueError, match=message):
        original.import_state_dict(model, tiny_state_dict())


def test_cls_token_and_kmeans_queries():
    backbone = ViT(patch_size=8, embed_dim=16, num_layers=1, num_heads=2, pooling="cls")
    backbone.build((None, 16, 16, 3))
    entries = list(original.vit_entries(backbone))
    cls = [e for e in entries if e.name == "backbone.cls_token"]
    assert len(cls) == 1 and cls[0].shape == (16,)
    token = np.arange(16, dtype=np.float32)
    sd = {e.name: np.zeros(e.shape, np.float32) for e in entries} | {"backbone.cls_token": token}
    assert original.assign(entries, sd) == 15
    np.testing.assert_array_equal(backbone.cls_token.numpy(), token[None, None])
    assert list(original.queries_entries(KMeansQueries(num_slots=3))) == []


# --- the cross-attention decoder against a NumPy transcription of the original's ---------------


def _layer_norm(x, sd, name):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def _linear(x, sd, name):
    return x @ sd[f"{name}.weight"].T + sd.get(f"{name}.bias", 0.0)


def _attend(q, k, v, heads):
    """softmax over keys of q·k per head (q already scaled as the module does)."""
    split = lambda t: t.reshape(*t.shape[:2], heads, -1)  # noqa: E731  [B, L, h, C]
    logits = np.einsum("bqhc,bkhc->bhqk", split(q), split(k))
    weights = scipy.special.softmax(logits, axis=-1)
    out = np.einsum("bhqk,bkhc->bqhc", weights, split(v))
    return out.reshape(q.shape)


def reference_decoder(sd, queries, tokens, num_layers, heads):
    """The original's CrossAttentionDecoder forward (no positional embedding, no dropout)."""
    x = _layer_norm(tokens, sd, "inputs_norm")
    dim = queries.shape[-1]
    for i in range(num_layers):
        p = f"attn_blocks.{i}"
        h = _layer_norm(queries, sd, f"{p}.norm1")
        q, k, v = np.split(_linear(h, sd, f"{p}.self_attn.proj_qkv.0"), 3, axis=-1)
        queries = queries + _linear(_attend(q, k, v, heads), sd, f"{p}.self_attn.proj_out.1")
        h = _layer_norm(queries, sd, f"{p}.norm2")
        q = _linear(h, sd, f"{p}.cross_attn.proj_q.0") / np.sqrt(dim // heads)
        k, v = np.split(_linear(x, sd, f"{p}.cross_attn.proj_kv.0"), 2, axis=-1)
        queries = queries + _linear(_attend(q, k, v, heads), sd, f"{p}.cross_attn.proj_out.1")
        h = _layer_norm(queries, sd, f"{p}.norm3")
        hidden = _linear(h, sd, f"{p}.mlp.fc1")
        hidden = 0.5 * hidden * (1.0 + scipy.special.erf(hidden / np.sqrt(2.0)))
        queries = queries + _linear(hidden, sd, f"{p}.mlp.fc2")
    return queries


def test_cross_attention_decoder_names_and_forward_match_the_original():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(2, 3, 16)).astype(np.float32)
    tokens = rng.normal(size=(2, 10, 16)).astype(np.float32)
    decoder = CrossAttentionDecoder(num_layers=2, num_heads=4, mlp_ratio=2.0)
    decoder.build(queries.shape, tokens.shape)
    entries = list(original.cross_attention_decoder_entries(decoder, prefix=""))
    shapes = {e.name: e.shape for e in entries}
    block = {
        "norm1.weight": (16,),
        "norm1.bias": (16,),
        "self_attn.proj_qkv.0.weight": (48, 16),
        "self_attn.proj_out.1.weight": (16, 16),
        "self_attn.proj_out.1.bias": (16,),
        "norm2.weight": (16,),
        "norm2.bias": (16,),
        "cross_attn.proj_q.0.weight": (16, 16),
        "cross_attn.proj_kv.0.weight": (32, 16),
        "cross_attn.proj_out.1.weight": (16, 16),
        "cross_attn.proj_out.1.bias": (16,),
        "norm3.weight": (16,),
        "norm3.bias": (16,),
        "mlp.fc1.weight": (32, 16),
        "mlp.fc1.bias": (32,),
        "mlp.fc2.weight": (16, 32),
        "mlp.fc2.bias": (16,),
    }
    expected = {"inputs_norm.weight": (16,), "inputs_norm.bias": (16,)}
    expected |= {f"attn_blocks.{i}.{k}": v for i in range(2) for k, v in block.items()}
    assert shapes == expected
    # Random values everywhere (LayerNorm gains around 1) so that no layout mistake hides.
    sd = {
        name: (1.0 if "norm" in name and name.endswith(".weight") else 0.0)
        + rng.normal(size=shape).astype(np.float32) / np.sqrt(shape[-1])
        for name, shape in shapes.items()
    }
    assert original.assign(entries, sd) == len(sd)
    got, _ = decoder(queries, tokens)
    want = reference_decoder(
        {k: v.astype(np.float64) for k, v in sd.items()}, queries, tokens, 2, 4
    )
    assert_close("cross-attention decoder", got, want, rtol=1e-5, atol=1e-5)


# --- the original's Hydra configuration ---------------------------------------------------------

#: The original's composed default configuration (configs/train.yaml at 88293f4), model
#: and data sections: architecture vit_obj_global, learned queries, slot attention.
DEFAULT_CONFIG = {
    "model": {
        "architecture": "backbone-obj_fn(-global_fn-global_proj)-obj_proj",
        "backbone": {
            "patch_size": [8, 8],
            "embed_dim": 64,
            "pos_embed": "learned",
            "pos_embed_dropout": 0.0,
            "pos_embed_every_layer": True,
            "num_layers": 4,
            "num_heads": 4,
            "block_drop": 0.0,
            "block_attn_drop": 0.0,
            "drop_path": 0.0,
            "mlp_ratio": 2.0,
            "global_pool": "avg",
        },
        "global_fn": {"hidden_mult": 2.0, "activation": "gelu", "dropout": 0.0},
        "global_proj": {
            "hidden_mult": 2.0,
            "activation": "gelu",
            "dropout": 0.0,
            "out_bias": False,
        },
        "obj_queries": {"name": "learned", "num_objects": 11},
        "obj_fn": {
            "name": "slot-attention",
            "hidden_mult": 2.0,
            "pos_embed": None,
            "num_iters": 3,
        },
        "obj_proj": {"hidden_mult": 2.0, "activation": "gelu", "dropout": 0.0, "out_bias": False},
    },
    "data": {"name": "CLEVR10", "crop_size": [128, 128]},
    "optimizer": {"name": "adam", "start_lr": 0.0007, "weight_decay": "1e-4"},
}


def variant(**changes) -> dict:
    """DEFAULT_CONFIG with ``{"model.obj_fn.num_iters": 2, ...}`` changed."""
    cfg = json.loads(json.dumps(DEFAULT_CONFIG))
    for path, value in changes.items():
        *parents, key = path.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[key] = value
    return cfg


def configured_model(bindings=()) -> dict:
    """The (unbuilt) configured model's config without layer names, and the crop size."""
    config.parse(["gin/train.gin"], list(bindings))

    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "name"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    model = gin.get_configurable("ObjectCentricModel")()
    return {
        "model": strip(model.get_config()),
        "crop": gin.query_parameter("MultiObjectData.crop_size"),
    }


def test_the_originals_default_configuration_is_gin_train():
    bindings = original.translate_config(DEFAULT_CONFIG)
    assert "ObjectCentricModel.queries = @LearnedQueries()" in bindings
    assert "MultiObjectData.crop_size = 128" in bindings
    assert configured_model(bindings) == configured_model()


@pytest.mark.parametrize(
    "changes, expect",
    [
        ({"model.obj_queries": {"name": "sample", "num_objects": 7, "num_components": 3}},
         ["ObjectCentricModel.queries = @GaussianQueries()", "GaussianQueries.num_slots = 7",
          "GaussianQueries.num_components = 3"]),
        ({"model.obj_queries": {"name": "kmeans_euclidean", "num_objects": 5}},
         ["ObjectCentricModel.queries = @KMeansQueries()", "KMeansQueries.distance = 'euclidean'",
          "KMeansQueries.max_iters = 20", "KMeansQueries.tol = 1e-06"]),
        ({"model.obj_fn": {"name": "cross-attention", "pos_embed": "backbone", "num_layers": 3,
                           "num_heads": 2, "block_drop": 0.1, "block_attn_drop": 0.2,
                           "drop_path": 0.3, "mlp_ratio": 4.0}},
         ["ObjectCentricModel.object_fn = @CrossAttentionDecoder()",
          "ObjectCentricModel.object_pos_embedding = True",
          "CrossAttentionDecoder.num_layers = 3", "CrossAttentionDecoder.num_heads = 2",
          "CrossAttentionDecoder.mlp_ratio = 4.0", "CrossAttentionDecoder.dropout = 0.1",
          "CrossAttentionDecoder.attn_dropout = 0.2", "CrossAttentionDecoder.drop_path = 0.3"]),
        ({"model.architecture": "backbone(-global_fn-global_proj)-obj_fn-obj_proj",
          "model.backbone.global_pool": "cls", "model.backbone.block_drop": 0.25,
          "model.backbone.patch_size": 4, "data.crop_size": 64},
         ["ObjectCentricModel.global_from_slots = False", "ViT.pooling = 'cls'",
          "ViT.dropout = 0.25", "ViT.patch_size = 4", "MultiObjectData.crop_size = 64"]),
        ({"model.architecture": "backbone-global_fn-global_proj", "model.obj_queries": None,
          "model.obj_fn": None, "model.obj_proj": None, "model.backbone.global_pool": "cls"},
         ["ObjectCentricModel.queries = None", "ObjectCentricModel.object_fn = None",
          "ObjectCentricModel.object_proj = None"]),
        ({"model.global_fn.activation": "relu", "model.obj_fn.num_iters": 5,
          "model.backbone.embed_dim": 128, "model.backbone.pos_embed_every_layer": False},
         ["global_fn/MLPHead.activation = 'relu'", "SlotAttention.num_iters = 5",
          "ViT.embed_dim = 128", "ViT.pos_embed_every_layer = False"]),
    ],
)  # fmt: skip
def test_variants_of_the_original_configuration(changes, expect):
    bindings = original.translate_config(variant(**changes))
    for line in expect:
        assert line in bindings, (line, bindings)
    config.parse(["gin/train.gin"], bindings)
    gin.get_configurable("ObjectCentricModel")()  # a valid model configuration


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"model.backbone.foo": 1}, "unknown key(s) in the original's configuration: "
         "model.backbone.foo"),
        ({"model.obj_queries": {"name": "kmeans_cosine", "num_objects": 11}},
         "model.obj_queries.name = 'kmeans_cosine'"),
        ({"model.obj_fn.pos_embed": "learned"}, "model.obj_fn.pos_embed = 'learned'"),
        ({"model.backbone.pos_embed": None}, "model.backbone.pos_embed = None"),
        ({"model.backbone.pos_embed_dropout": 0.1}, "model.backbone.pos_embed_dropout = 0.1"),
        ({"model.backbone.global_pool": "cls"}, "model.backbone.global_pool = 'cls'"),
        ({"data.crop_size": [128, 96]}, "data.crop_size = [128, 96]"),
        ({"model.backbone.patch_size": [8, 4]}, "model.backbone.patch_size = [8, 4]"),
        ({"model.architecture": "backbone-only"}, "model.architecture = 'backbone-only'"),
        ({"model.backbone.block_drop": "0.1"}, "model.backbone.block_drop = '0.1'"),
        ({"model.obj_proj.activation": "tanh"}, "model.obj_proj.activation = 'tanh'"),
        ({"model.obj_fn": None}, "needs model.obj_fn, which are null"),
        ({"data.name": "Tetrominoes"}, "data.name = 'Tetrominoes'"),
    ],
)  # fmt: skip
def test_unsupported_configuration_values_are_named(changes, message):
    with pytest.raises(original.ImportFailure) as error:
        original.translate_config(variant(**changes))
    assert message in str(error.value)


# --- scripts/import_original.py and osc_tf.load_model ------------------------------------------


def tiny_config() -> dict:
    """The Hydra configuration of the tiny model (section h)."""
    return variant(
        **{
            "model.backbone.embed_dim": 16,
            "model.backbone.num_layers": 2,
            "model.backbone.num_heads": 2,
            "model.obj_queries.num_objects": 3,
            "data.crop_size": [32, 32],
        }
    )


def original_run(tmp_path, with_config=True) -> str:
    """An original run folder: checkpoint.7.npz (+ .hydra/config.yaml); returns the npz."""
    run = tmp_path / "original_run"
    (run / ".hydra").mkdir(parents=True)
    path = run / "checkpoint.7.npz"
    np.savez(path, **tiny_state_dict())
    if with_config:
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(tiny_config()))
    return str(path)


def test_script_writes_a_workdir_that_loads_as_the_original(tiny, tmp_path, capsys):
    checkpoint, workdir = original_run(tmp_path), str(tmp_path / "workdir")
    assert script.main(["--checkpoint", checkpoint, "--workdir", workdir]) == 0
    assert "imported 53 tensors" in capsys.readouterr().out
    info = json.load(open(os.path.join(workdir, "original_import.json")))
    assert info["epoch"] == 7 and info["step"] == 0 and info["tensors"] == 53
    assert "ViT.embed_dim = 16" in info["bindings"]

    model = osc_tf.load_model(workdir)  # the newest checkpoint of the workdir
    got = model(tiny_images())
    for key, want in tiny.outputs.items():
        assert_close(f"load_model {key}", got[key], want, rtol=1e-5, atol=1e-5)

    # What train() does on resuming: its Checkpoints restore model, optimizer and step.
    imported = weights(model)
    for w in model.weights:
        w.assign(np.zeros(w.shape, w.dtype))
    # train(): optimizer(learning_rate=lr_schedule(total_steps=num_steps)), then build.
    schedule = original.checkpoint._configured("lr_schedule", None)(
        total_steps=train_parameter("num_steps")
    )
    optimizer = original.checkpoint._configured("optimizer", None)(learning_rate=schedule)
    optimizer.build(model.trainable_variables)
    assert Checkpoints(workdir, model, optimizer).restore_or_initialize() == 0
    for a, b in zip(weights(model), imported, strict=True):
        np.testing.assert_array_equal(a, b)

    # A non-empty workdir is refused, then replaced with --overwrite (here at step 5).
    assert script.main(["--checkpoint", checkpoint, "--workdir", workdir]) == 2
    assert "is not empty; pass --overwrite" in capsys.readouterr().err
    args = ["--checkpoint", checkpoint, "--workdir", workdir, "--overwrite", "--step", "5"]
    assert script.main(args) == 0
    folder = os.path.join(workdir, "checkpoints")
    assert set(os.listdir(folder)) == {"checkpoint", "ckpt-5.index", "ckpt-5.data-00000-of-00001"}
    reader = tf.train.load_checkpoint(folder)
    assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 5
    assert reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE") == 5


@pytest.mark.slow
def test_evaluate_and_export_scripts_accept_an_imported_workdir(tiny_data, tmp_path):
    """On the tiny synthetic dataset (the original's CLEVR is not needed)."""
    checkpoint, workdir = original_run(tmp_path), str(tmp_path / "workdir")
    data = [
        "--gin_file=gin/data/synthetic.gin",
        f"--gin_param=MultiObjectData.data_dir = {tiny_data.data_dir!r}",
        f"--gin_param=MultiObjectData.num_examples = {tiny_data.num_examples}",
        f"--gin_param=MultiObjectData.image_size = {tuple(tiny_data.image_size)}",
        "--gin_param=MultiObjectData.crop_size = 32",  # synthetic.gin sets 128
        "--gin_param=linear_probe.num_steps = 20",
    ]
    assert script.main(["--checkpoint", checkpoint, "--workdir", workdir, *data]) == 0
    assert evaluate_script.main(["--workdir", workdir, "--max_samples", "6"]) == 0
    metrics = json.load(open(os.path.join(workdir, "metrics.json")))
    assert metrics["step"] == 0 and metrics["checkpoint"].endswith("ckpt-0")
    assert all(np.isfinite(v) for v in metrics["trained"].values())
    out = tmp_path / "exported"
    assert export_script.main(["--workdir", workdir, "--out", str(out)]) == 0
    loaded = tf.saved_model.load(str(out))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    result = loaded.objects(tf.constant(pixels), num_slots=tf.constant(3))
    assert result["slots"].shape == (2, 3, 16)
    # train() resumes the workdir (model, optimizer and step from the checkpoint).
    before = weights(osc_tf.load_model(workdir))
    config.read_workdir(
        workdir,
        ["train.num_steps = 1", "train.batch_size = 4", "train.evaluate = False",
         "train.export = False", "train.val_batches = 1"],
    )  # fmt: skip
    result = gin.get_configurable("train")()
    assert result["status"] == "finished" and result["step"] == 1
    after = weights(osc_tf.load_model(workdir))
    assert any(not np.array_equal(a, b) for a, b in zip(after, before, strict=True))


def test_script_without_a_hydra_configuration_uses_gin_and_names_what_does_not_fit(
    tmp_path, capsys
):
    checkpoint = original_run(tmp_path, with_config=False)
    args = ["--checkpoint", checkpoint, "--workdir", str(tmp_path / "w")]
    params = [f"--gin_param={b}" for b in TINY_BINDINGS if "num_slots" not in b]
    params += ["--gin_param=LearnedQueries.num_slots = 4"]
    assert script.main(args + params) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot import {checkpoint}: 1 tensor(s)")
    assert "mis-shaped: obj_queries.tokens: expected [4, 16], given [3, 16]" in err
    assert not os.path.exists(tmp_path / "w" / "checkpoints")


def test_script_bad_files_give_one_line_naming_the_file(tmp_path, capsys):
    workdir = str(tmp_path / "w")
    bad = tmp_path / "checkpoint.3.npz"
    bad.write_bytes(b"not a zip archive")
    assert script.main(["--checkpoint", str(bad), "--workdir", workdir]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read {bad} as .npz" in err
    missing = tmp_path / "nothing.pth"
    assert script.main(["--checkpoint", str(missing), "--workdir", workdir]) == 2
    assert capsys.readouterr().err == f"error: cannot read {missing}: no such file\n"
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    np.savez(run / "checkpoint.1.npz", **tiny_state_dict())
    (run / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    assert script.main(["--checkpoint", str(run / "checkpoint.1.npz"), "--workdir", workdir]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read {run / '.hydra' / 'config.yaml'}" in err
    assert not os.path.exists(workdir)


def test_script_names_the_torch_install_when_torch_is_missing(tmp_path, capsys):
    try:
        import torch  # noqa: F401

        pytest.skip("torch is installed: the message for a missing torch cannot be shown")
    except ImportError:
        pass
    pth = tmp_path / "checkpoint.0.pth"
    pth.write_bytes(b"\0")
    assert script.main(["--checkpoint", str(pth), "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(pth) in err and "pip install torch==2.13.0" in err


def test_import_osc_tf_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, osc_tf; osc_tf.load_model; print('tensorflow' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"
