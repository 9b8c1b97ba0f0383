"""The original study's Hydra configuration, translated into gin bindings.

The original (baldassarreFe/iclr-osc-22 at 88293f4) writes the configuration of a
run to ``.hydra/config.yaml`` in its run folder (and ``train.yaml`` there).
``translate_config`` turns its model section and crop size into bindings of our
gin names (architecture, backbone, queries, object function, heads, dropouts);
the losses, optimizer and data pipeline are left to gin. A value osc_tf cannot
reproduce is an ``ImportFailure`` naming its key.
"""

from __future__ import annotations

import os

HYDRA_CONFIGS = (os.path.join(".hydra", "config.yaml"), "train.yaml")


class ImportFailure(Exception):
    """A user-facing error of an import: one line naming the file or the key."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type when it has none)."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def find_original_config(checkpoint: str) -> str | None:
    """The Hydra configuration of the run that wrote ``checkpoint``, if it is beside it."""
    folder = os.path.dirname(os.path.abspath(checkpoint))
    for name in HYDRA_CONFIGS:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def read_original_config(path: str) -> dict:
    try:
        import yaml
    except ImportError:
        raise ImportFailure(
            "reading the Hydra configuration needs PyYAML: pip install -r requirements.txt"
        ) from None
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ImportFailure(f"cannot read {path}: {first_line(e)}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise ImportFailure(f"{path} is not the original's configuration (no 'model' section)")
    return cfg


ARCHITECTURES = {
    # the original's name -> (object branch, global branch reads the slots)
    "backbone-global_fn-global_proj": (False, False),
    "backbone(-global_fn-global_proj)-obj_fn-obj_proj": (True, False),
    "backbone-obj_fn(-global_fn-global_proj)-obj_proj": (True, True),
}
# The keys of a stack of transformer blocks (the backbone's and the decoder's).
_BLOCKS = {"num_layers", "num_heads", "block_drop", "block_attn_drop", "drop_path", "mlp_ratio"}
_KEYS = {
    "model": {
        "architecture",
        "backbone",
        "global_fn",
        "global_proj",
        "obj_queries",
        "obj_fn",
        "obj_proj",
    },
    "model.backbone": _BLOCKS
    | {"patch_size", "embed_dim", "pos_embed", "pos_embed_dropout", "pos_embed_every_layer"}
    | {"global_pool"},
    # dropout and out_bias are read by the original's configs but never used by its
    # build_model (it hard-codes dropout 0, no output bias on the projections and a
    # 4·D hidden layer in obj_proj), so they are accepted and ignored here too.
    "model.global_fn": {"hidden_mult", "activation", "dropout"},
    "model.global_proj": {"hidden_mult", "activation", "dropout", "out_bias"},
    "model.obj_proj": {"hidden_mult", "activation", "dropout", "out_bias"},
    "model.obj_queries.learned": {"name", "num_objects"},
    "model.obj_queries.kmeans_euclidean": {"name", "num_objects"},
    "model.obj_queries.sample": {"name", "num_objects", "num_components"},
    "model.obj_fn.slot-attention": {"name", "hidden_mult", "pos_embed", "num_iters"},
    "model.obj_fn.cross-attention": _BLOCKS | {"name", "pos_embed"},
}
ACTIVATIONS = ("gelu", "relu")


class _Reader:
    """Reads typed values from the configuration, naming the key of any bad value."""

    def __init__(self, cfg: dict):
        self.cfg = cfg

    def section(self, path: str, allowed: str | None = None):
        node = self.cfg
        for key in path.split("."):
            if not isinstance(node, dict) or key not in node:
                raise ImportFailure(f"the original's configuration has no {path}")
            node = node[key]
        if node is not None and not isinstance(node, dict):
            raise ImportFailure(f"{path} must be a section, got {node!r}")
        if node is not None and allowed is not None:
            unknown = sorted(set(node) - _KEYS[allowed])
            if unknown:
                raise ImportFailure(
                    "unknown key(s) in the original's configuration: "
                    + ", ".join(f"{path}.{k}" for k in unknown)
                )
        return node

    def value(self, path: str, kind, choices=None):
        section, _, key = path.rpartition(".")
        node = self.section(section)
        if node is None or key not in node:
            raise ImportFailure(f"the original's configuration has no {path}")
        value = node[key]
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok or (choices is not None and value not in choices):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = (
                f"one of {list(choices)}"
                if choices is not None
                else " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            )
            raise ImportFailure(f"unsupported value {path} = {value!r} (expected {expected})")
        return value

    def square(self, path: str) -> int:
        """A size given as ``n`` or ``[n, n]``."""
        section, _, key = path.rpartition(".")
        value = (self.section(section) or {}).get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        if (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and value[0] == value[1]
            and value[0] > 0
        ):
            return value[0]
        raise ImportFailure(
            f"unsupported value {path} = {value!r} (osc_tf needs one square size, n or [n, n])"
        )

    def zero(self, path: str, why: str) -> None:
        if self.value(path, float) != 0.0:
            raise ImportFailure(f"unsupported value {path} = {self.value(path, float)!r}: {why}")


def translate_config(cfg: dict) -> list[str]:
    """gin bindings that build the model of the original's (Hydra) configuration ``cfg``.

    Covers the architecture, backbone, queries, object function, heads, crop
    size and dropouts; the losses, optimizer and data pipeline are left to gin.

    Raises:
        ImportFailure: naming an unknown key or a value osc_tf cannot reproduce.
    """
    r = _Reader(cfg)
    r.section("model", "model")
    architecture = r.value("model.architecture", str, ARCHITECTURES)
    has_objects, from_slots = ARCHITECTURES[architecture]
    out = [f"ObjectCentricModel.global_from_slots = {from_slots}"]

    # Backbone.
    r.section("model.backbone", "model.backbone")
    b = "model.backbone"
    pos_embed = r.value(f"{b}.pos_embed", (str, type(None)))
    if pos_embed != "learned":
        raise ImportFailure(
            f"unsupported value {b}.pos_embed = {pos_embed!r}: osc_tf's ViT always has a "
            "learned positional embedding ('learned')"
        )
    r.zero(f"{b}.pos_embed_dropout", "osc_tf's ViT has no dropout on the positional embedding")
    pooling = r.value(f"{b}.global_pool", str, ("avg", "cls"))
    if from_slots and pooling == "cls":
        raise ImportFailure(
            f"unsupported value {b}.global_pool = 'cls' with architecture {architecture!r}: "
            "osc_tf pools the slots there and has no CLS token"
        )
    out += [
        f"ViT.patch_size = {r.square(f'{b}.patch_size')}",
        f"ViT.embed_dim = {r.value(f'{b}.embed_dim', int)}",
        f"ViT.num_layers = {r.value(f'{b}.num_layers', int)}",
        f"ViT.num_heads = {r.value(f'{b}.num_heads', int)}",
        f"ViT.mlp_ratio = {r.value(f'{b}.mlp_ratio', float)!r}",
        f"ViT.dropout = {r.value(f'{b}.block_drop', float)!r}",
        f"ViT.attn_dropout = {r.value(f'{b}.block_attn_drop', float)!r}",
        f"ViT.drop_path = {r.value(f'{b}.drop_path', float)!r}",
        f"ViT.pos_embed_every_layer = {r.value(f'{b}.pos_embed_every_layer', bool)}",
        f"ViT.pooling = {pooling!r}",
        # What the original's ViT always does.
        "ViT.qkv_bias = False",
        "ViT.output_norm = False",
        "ViT.scale_attention = False",
    ]

    # Global branch: the original fixes the output bias (global_fn yes, global_proj no).
    for part, out_bias in (("global_fn", True), ("global_proj", False)):
        r.section(f"model.{part}", f"model.{part}")
        out += [
            f"{part}/MLPHead.hidden_mult = {r.value(f'model.{part}.hidden_mult', float)!r}",
            f"{part}/MLPHead.activation = "
            f"{r.value(f'model.{part}.activation', str, ACTIVATIONS)!r}",
            f"{part}/MLPHead.out_bias = {out_bias}",
        ]

    sections = {k: r.section(f"model.{k}") for k in ("obj_queries", "obj_fn", "obj_proj")}
    if not has_objects:
        present = [f"model.{k}" for k, v in sections.items() if v is not None]
        if present:
            raise ImportFailure(
                f"architecture {architecture!r} has no object branch, but the configuration "
                f"sets {', '.join(present)}"
            )
        out += [
            "ObjectCentricModel.queries = None",
            "ObjectCentricModel.object_fn = None",
            "ObjectCentricModel.object_proj = None",
        ]
    else:
        missing = [f"model.{k}" for k, v in sections.items() if v is None]
        if missing:
            raise ImportFailure(
                f"architecture {architecture!r} needs {', '.join(missing)}, which are null"
            )
        out += _queries(r) + _object_fn(r) + _object_proj(r)

    # Data: only the crop size matters to the model.
    if isinstance(cfg.get("data"), dict) and "crop_size" in cfg["data"]:
        name = cfg["data"].get("name")
        if name not in (None, "CLEVR10"):
            raise ImportFailure(f"unsupported value data.name = {name!r} (expected 'CLEVR10')")
        out.append(f"MultiObjectData.crop_size = {r.square('data.crop_size')}")
    return out


def _queries(r: _Reader) -> list[str]:
    name = r.value("model.obj_queries.name", str, ("learned", "sample", "kmeans_euclidean"))
    r.section("model.obj_queries", f"model.obj_queries.{name}")
    num = r.value("model.obj_queries.num_objects", int)
    if name == "learned":
        return [
            "ObjectCentricModel.queries = @LearnedQueries()",
            f"LearnedQueries.num_slots = {num}",
        ]
    if name == "sample":
        components = r.value("model.obj_queries.num_components", int)
        return [
            "ObjectCentricModel.queries = @GaussianQueries()",
            f"GaussianQueries.num_slots = {num}",
            f"GaussianQueries.num_components = {components}",
        ]
    # The original's KmeansEuclideanObjectTokens: 20 iterations, tolerance 1e-6,
    # K random tokens (the same indices for the whole batch).
    return [
        "ObjectCentricModel.queries = @KMeansQueries()",
        f"KMeansQueries.num_slots = {num}",
        "KMeansQueries.distance = 'euclidean'",
        "KMeansQueries.max_iters = 20",
        "KMeansQueries.tol = 1e-06",
        "KMeansQueries.init = 'random'",
    ]


def _object_fn(r: _Reader) -> list[str]:
    f = "model.obj_fn"
    name = r.value(f"{f}.name", str, ("slot-attention", "cross-attention"))
    r.section(f, f"{f}.{name}")
    pos_embed = r.value(f"{f}.pos_embed", (str, type(None)))
    if pos_embed not in (None, "backbone"):
        raise ImportFailure(
            f"unsupported value {f}.pos_embed = {pos_embed!r}: osc_tf can add the backbone's "
            "positional embedding ('backbone') or none (null), not a separate one"
        )
    out = [f"ObjectCentricModel.object_pos_embedding = {pos_embed == 'backbone'}"]
    if name == "slot-attention":
        return out + [
            "ObjectCentricModel.object_fn = @SlotAttention()",
            f"SlotAttention.num_iters = {r.value(f'{f}.num_iters', int)}",
            f"SlotAttention.hidden_mult = {r.value(f'{f}.hidden_mult', float)!r}",
        ]
    return out + [
        "ObjectCentricModel.object_fn = @CrossAttentionDecoder()",
        f"CrossAttentionDecoder.num_layers = {r.value(f'{f}.num_layers', int)}",
        f"CrossAttentionDecoder.num_heads = {r.value(f'{f}.num_heads', int)}",
        f"CrossAttentionDecoder.mlp_ratio = {r.value(f'{f}.mlp_ratio', float)!r}",
        f"CrossAttentionDecoder.dropout = {r.value(f'{f}.block_drop', float)!r}",
        f"CrossAttentionDecoder.attn_dropout = {r.value(f'{f}.block_attn_drop', float)!r}",
        f"CrossAttentionDecoder.drop_path = {r.value(f'{f}.drop_path', float)!r}",
        "CrossAttentionDecoder.reuse_layers = False",
        "CrossAttentionDecoder.qkv_bias = False",
        "CrossAttentionDecoder.scale_self_attention = False",
    ]


def _object_proj(r: _Reader) -> list[str]:
    r.section("model.obj_proj", "model.obj_proj")
    activation = r.value("model.obj_proj.activation", str, ACTIVATIONS)
    return [
        "ObjectCentricModel.object_proj = @object_proj/MLPHead()",
        "object_proj/MLPHead.hidden_mult = 4.0",  # the original hard-codes 4·D
        f"object_proj/MLPHead.activation = {activation!r}",
        "object_proj/MLPHead.out_bias = False",
    ]
