"""Weights of the original PyTorch study (baldassarreFe/iclr-osc-22 at 88293f4) in our model.

The original saves ``model.state_dict()``: a mapping from dotted parameter names
(``backbone.attn_blocks.0.mlp.fc1.weight``) to tensors in PyTorch layouts. This
module knows, for a built ``ObjectCentricModel``, which of our variables each of
those tensors becomes and how its layout changes. ``parameter_map`` is that
table, one ``Entry`` per (original tensor, our variable) pair; importing
(``import_state_dict``), exporting (``export_state_dict``) and the
initialisation parity test all read it.

Layout rules (``../shared/parity/original_fixtures.md``):

- ``nn.Linear.weight [out, in]`` is a Dense kernel ``[in, out]`` (transposed).
- ``nn.Conv2d.weight [out, in, kh, kw]`` is a Conv2D kernel ``[kh, kw, in, out]``.
- A fused projection (``proj_qkv`` ``[3D, in]``, ``proj_kv`` ``[2D, in]``) is cut
  into row blocks q | k | v, each block's features ordered head-major
  (``h * D/h + c``) as our per-head split expects.
- ``nn.GRUCell`` stacks its gates r, z, n; Keras' ``GRUCell(reset_after=True)``
  stacks z, r, h, so the first two blocks swap. Its two bias vectors are the rows
  of the Keras ``bias [2, 3H]``.
- The positional embedding ``[N, D]`` lists patches row-major; ours is ``[1, h, w, D]``.
- The CLS token ``[D]`` and learned queries ``[K, D]`` get a leading batch axis.

Parts with no counterpart in the original (``CoAttentionDecoder``, a pooling
head, a final backbone LayerNorm, a shared decoder block) cannot be imported and
are named in the error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class Entry:
    """One original tensor (or a block of its rows) and the variable (or row) it fills.

    Attributes:
        name: the original's state-dict name.
        shape: the full shape of that tensor in the original (PyTorch layout).
        variable: our Keras variable.
        to_ours: original block -> our value (the variable, or its row ``part``).
        to_original: the inverse of ``to_ours``.
        rows: the block of the original tensor's first axis this entry reads
            (fused projections); None for the whole tensor.
        part: the index along our variable's first axis this entry writes
            (the GRU's two bias rows); None for the whole variable.
    """

    name: str
    shape: tuple[int, ...]
    variable: object
    to_ours: Callable[[np.ndarray], np.ndarray]
    to_original: Callable[[np.ndarray], np.ndarray]
    rows: slice | None = None
    part: int | None = None


# --- layout converters -------------------------------------------------------------------


def _same(x):
    return x


def _conv_to_ours(w):  # [out, in, kh, kw] -> [kh, kw, in, out]
    return np.transpose(w, (2, 3, 1, 0))


def _conv_to_original(k):  # [kh, kw, in, out] -> [out, in, kh, kw]
    return np.transpose(k, (3, 2, 0, 1))


def _swap_first_gates(x):
    """Gate blocks r, z, n <-> z, r, n along axis 0 (its own inverse)."""
    first, second, third = np.split(x, 3, axis=0)
    return np.concatenate([second, first, third], axis=0)


def _gru_kernel_to_ours(w):  # [3H, in] gates r,z,n -> [in, 3H] gates z,r,h
    return _swap_first_gates(w).T


def _gru_kernel_to_original(k):
    return _swap_first_gates(k.T)


def _reshaper(shape):
    shape = tuple(shape)
    return lambda x: np.reshape(x, shape)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# --- per-part tables ---------------------------------------------------------------------


def _plain(name, variable, to_ours=_same, to_original=_same, shape=None) -> Entry:
    shape = tuple(variable.shape) if shape is None else tuple(shape)
    return Entry(name, shape, variable, to_ours, to_original)


def _linear(prefix: str, dense) -> Iterator[Entry]:
    """``nn.Linear`` ``prefix.weight [out, in]`` (and ``prefix.bias``) -> a Dense layer."""
    fan_in, units = dense.kernel.shape
    yield _plain(f"{prefix}.weight", dense.kernel, np.transpose, np.transpose, (units, fan_in))
    if dense.use_bias:
        yield _plain(f"{prefix}.bias", dense.bias)


def _fused_linear(prefix: str, denses) -> Iterator[Entry]:
    """One ``nn.Linear`` whose output rows are the outputs of ``denses``, stacked in order."""
    fan_in = denses[0].kernel.shape[0]
    units = [d.kernel.shape[1] for d in denses]
    starts = np.cumsum([0, *units])
    total = int(starts[-1])
    for dense, start, stop in zip(denses, starts[:-1], starts[1:], strict=True):
        rows = slice(int(start), int(stop))
        yield Entry(
            f"{prefix}.weight", (total, fan_in), dense.kernel, np.transpose, np.transpose, rows
        )
    if any(d.use_bias for d in denses):
        for dense, start, stop in zip(denses, starts[:-1], starts[1:], strict=True):
            if not dense.use_bias:
                raise ValueError(f"{prefix}: only some of its fused projections have a bias")
            yield Entry(
                f"{prefix}.bias", (total,), dense.bias, _same, _same, slice(int(start), int(stop))
            )


def _layer_norm(prefix: str, norm) -> Iterator[Entry]:
    yield _plain(f"{prefix}.weight", norm.gamma)
    yield _plain(f"{prefix}.bias", norm.beta)


def mlp_entries(mlp, prefix: str, names=("fc1", "fc2")) -> Iterator[Entry]:
    """A ``FeedForward`` or ``MLPHead`` as the original's ``MLP``/timm ``Mlp``."""
    yield from _linear(_join(prefix, names[0]), mlp.fc1)
    yield from _linear(_join(prefix, names[1]), mlp.fc2)


def self_attention_entries(attn, prefix: str = "") -> Iterator[Entry]:
    """Our ``MultiHeadAttention`` as the original's ``SelfAttention``."""
    yield from _fused_linear(_join(prefix, "proj_qkv.0"), [attn.q_proj, attn.k_proj, attn.v_proj])
    yield from _linear(_join(prefix, "proj_out.1"), attn.out_proj)


def cross_attention_entries(attn, prefix: str = "") -> Iterator[Entry]:
    """Our ``MultiHeadAttention`` (with a context) as the original's ``CrossAttention``."""
    yield from _fused_linear(_join(prefix, "proj_q.0"), [attn.q_proj])
    yield from _fused_linear(_join(prefix, "proj_kv.0"), [attn.k_proj, attn.v_proj])
    yield from _linear(_join(prefix, "proj_out.1"), attn.out_proj)


def vit_entries(vit, prefix: str = "backbone") -> Iterator[Entry]:
    """Our ``ViT`` as the original's ``ViTBackbone`` with a learned positional embedding."""
    if vit.output_norm:
        raise ValueError(
            "ViT.output_norm=True: the original backbone has no final LayerNorm, so this "
            "model cannot take its weights"
        )
    kernel = vit.patch_embed.kernel  # [P, P, C, D]
    height, width, channels, dim = kernel.shape
    yield _plain(
        _join(prefix, "patch_emb.proj.weight"),
        kernel,
        _conv_to_ours,
        _conv_to_original,
        (dim, channels, height, width),
    )
    yield _plain(_join(prefix, "patch_emb.proj.bias"), vit.patch_embed.bias)
    yield _positional_embedding(_join(prefix, "pos_embed.embed"), vit)
    if vit.pooling == "cls":
        yield _plain(
            _join(prefix, "cls_token"),
            vit.cls_token,
            _reshaper(vit.cls_token.shape),
            _reshaper((vit.embed_dim,)),
            (vit.embed_dim,),
        )
    for i, block in enumerate(vit.blocks):
        name = _join(prefix, f"attn_blocks.{i}")
        yield from _layer_norm(f"{name}.norm1", block.norm1)
        yield from self_attention_entries(block.attn, f"{name}.attn")
        yield from _layer_norm(f"{name}.norm2", block.norm2)
        yield from mlp_entries(block.mlp, f"{name}.mlp")


def _positional_embedding(name: str, vit) -> Entry:
    table = vit.pos_embed  # [1, h, w, D]
    _, height, width, dim = table.shape
    return _plain(
        name, table, _reshaper(table.shape), _reshaper((height * width, dim)), (height * width, dim)
    )


def slot_attention_entries(layer, prefix: str = "obj_fn") -> Iterator[Entry]:
    """Our ``SlotAttention`` as the original's ``SlotAttention``."""
    yield from _linear(_join(prefix, "to_q"), layer.q_proj)
    yield from _linear(_join(prefix, "to_k"), layer.k_proj)
    yield from _linear(_join(prefix, "to_v"), layer.v_proj)
    gru = layer.gru
    fan_in, gates = gru.kernel.shape
    units = gru.recurrent_kernel.shape[0]
    yield _plain(
        _join(prefix, "gru.weight_ih"),
        gru.kernel,
        _gru_kernel_to_ours,
        _gru_kernel_to_original,
        (gates, fan_in),
    )
    yield _plain(
        _join(prefix, "gru.weight_hh"),
        gru.recurrent_kernel,
        _gru_kernel_to_ours,
        _gru_kernel_to_original,
        (gates, units),
    )
    if not gru.use_bias or not gru.reset_after or tuple(gru.bias.shape) != (2, gates):
        raise ValueError("SlotAttention.gru must be a GRUCell with reset_after=True and biases")
    for row, name in enumerate(("bias_ih", "bias_hh")):
        yield Entry(
            _join(prefix, f"gru.{name}"),
            (gates,),
            gru.bias,
            _swap_first_gates,
            _swap_first_gates,
            part=row,
        )
    yield from mlp_entries(layer.mlp, prefix, names=("mlp.0", "mlp.2"))
    yield from _layer_norm(_join(prefix, "norm_input"), layer.norm_inputs)
    yield from _layer_norm(_join(prefix, "norm_slots"), layer.norm_slots)
    yield from _layer_norm(_join(prefix, "norm_pre_ff"), layer.norm_mlp)


def cross_attention_decoder_entries(layer, prefix: str = "obj_fn") -> Iterator[Entry]:
    """Our ``CrossAttentionDecoder`` as the original's ``CrossAttentionDecoder``."""
    if layer.reuse_layers and layer.num_layers > 1:
        raise ValueError(
            "CrossAttentionDecoder.reuse_layers=True shares one block across layers; the "
            "original has a separate block per layer"
        )
    yield from _layer_norm(_join(prefix, "inputs_norm"), layer.norm_tokens)
    for i, block in enumerate(layer.blocks):
        name = _join(prefix, f"attn_blocks.{i}")
        if not block.self_attention or block.norm_ctx is not None:
            raise ValueError(f"{block.name}: the original's decoder blocks have self-attention")
        yield from _layer_norm(f"{name}.norm1", block.norm_self)
        yield from self_attention_entries(block.self_attn, f"{name}.self_attn")
        yield from _layer_norm(f"{name}.norm2", block.norm_cross)
        yield from cross_attention_entries(block.cross_attn, f"{name}.cross_attn")
        yield from _layer_norm(f"{name}.norm3", block.norm_mlp)
        yield from mlp_entries(block.mlp, f"{name}.mlp")


def queries_entries(queries, prefix: str = "obj_queries") -> Iterator[Entry]:
    """Learned tokens, sampled Gaussians (``mu``, ``log_sigma``) or k-means (no weights)."""
    from osc_tf.layers import queries as queries_lib

    if isinstance(queries, queries_lib.LearnedQueries):
        table = queries.queries  # [1, K, D]
        shape = tuple(table.shape[1:])
        yield _plain(
            _join(prefix, "tokens"), table, _reshaper(table.shape), _reshaper(shape), shape
        )
    elif isinstance(queries, queries_lib.GaussianQueries):
        yield _plain(_join(prefix, "mu"), queries.mu)
        yield _plain(_join(prefix, "log_sigma"), queries.log_sigma)
    elif isinstance(queries, queries_lib.KMeansQueries):
        return
    else:
        raise ValueError(_unsupported("queries", queries))


def _unsupported(part: str, layer) -> str:
    return (
        f"ObjectCentricModel.{part} is a {type(layer).__name__}, which has no counterpart "
        "in the original study, so the original's weights cannot be imported into it"
    )


def check_supported(model) -> None:
    """Raises a ValueError naming the first part of ``model`` the original does not have.

    Needs no weights: works on a model that is not built yet.
    """
    from osc_tf.layers import decoders, heads, queries, slot_attention, vit

    if type(model.backbone) is not vit.ViT:
        raise ValueError(_unsupported("backbone", model.backbone))
    if model.backbone.output_norm:
        raise ValueError(
            "ViT.output_norm=True: the original backbone has no final LayerNorm, so this "
            "model cannot take its weights"
        )
    if model.global_pool is not None:
        raise ValueError(_unsupported("global_pool", model.global_pool))
    for part in ("global_fn", "global_proj", "object_proj"):
        layer = getattr(model, part)
        if layer is not None and type(layer) is not heads.MLPHead:
            raise ValueError(_unsupported(part, layer))
    if not model.has_objects:
        return
    known = (queries.LearnedQueries, queries.GaussianQueries, queries.KMeansQueries)
    if type(model.queries) not in known:
        raise ValueError(_unsupported("queries", model.queries))
    object_fn = model.object_fn
    if type(object_fn) is decoders.CrossAttentionDecoder:
        if object_fn.reuse_layers and object_fn.num_layers > 1:
            raise ValueError(
                "CrossAttentionDecoder.reuse_layers=True shares one block across layers; the "
                "original has a separate block per layer"
            )
    elif type(object_fn) is not slot_attention.SlotAttention:
        raise ValueError(_unsupported("object_fn", object_fn))


def parameter_map(model) -> list[Entry]:
    """The table from the original's state-dict names to the variables of ``model``.

    Args:
        model: a built ``ObjectCentricModel`` whose parts all exist in the original.

    Returns:
        One ``Entry`` per (original tensor or row block, our variable or row), in
        the original's construction order. Every weight of ``model`` is covered.

    Raises:
        ValueError: naming a part the original does not have (``check_supported``),
            or if ``model`` is not built.
    """
    from osc_tf.layers import slot_attention

    check_supported(model)
    if not model.built or not model.backbone.built:
        raise ValueError("build the model first, e.g. model.build((None, 128, 128, 3))")
    entries = list(vit_entries(model.backbone, "backbone"))
    entries += mlp_entries(model.global_fn, "global_fn")
    entries += mlp_entries(model.global_proj, "global_proj")
    if model.has_objects:
        entries += queries_entries(model.queries, "obj_queries")
        if type(model.object_fn) is slot_attention.SlotAttention:
            entries += slot_attention_entries(model.object_fn, "obj_fn")
        else:
            entries += cross_attention_decoder_entries(model.object_fn, "obj_fn")
        if model.object_pos_embedding:
            # The original's obj_fn holds the backbone's PositionalEmbedding module
            # (pos_embed: backbone), so its state dict lists the same tensor twice.
            entries.append(_positional_embedding("obj_fn.pos_embed.embed", model.backbone))
        entries += mlp_entries(model.object_proj, "obj_proj")

    covered = {id(e.variable) for e in entries}
    left = [w.path for w in model.weights if id(w) not in covered]
    if left:
        raise ValueError(
            "these weights of the model have no counterpart in the original: " + ", ".join(left)
        )
    return entries


# --- import and export -------------------------------------------------------------------


def _shape(shape) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def assign(entries: list[Entry], state_dict: Mapping, source: str = "the state dict") -> int:
    """Checks ``state_dict`` against ``entries`` and, if it fits, assigns every variable.

    Nothing is assigned unless every tensor fits: the same names, the same shapes
    (nothing is broadcast), numeric and finite values, and equal values wherever two
    original tensors fill the same variable (a shared positional embedding).

    Args:
        entries: from ``parameter_map`` or a ``*_entries`` function.
        state_dict: original name -> array (numpy, a CPU torch tensor, anything
            ``np.asarray`` takes).
        source: how the error message names the state dict.

    Returns:
        The number of original tensors imported.

    Raises:
        ValueError: one error naming every missing, unexpected, mis-shaped,
            non-numeric or non-finite tensor.
    """
    expected: dict[str, tuple] = {}
    for entry in entries:
        if expected.setdefault(entry.name, entry.shape) != entry.shape:
            raise ValueError(f"inconsistent table: {entry.name} has two shapes")
    given = {str(name): np.asarray(value) for name, value in state_dict.items()}

    problems = [
        f"missing: {n} (expected {_shape(s)})" for n, s in expected.items() if n not in given
    ]
    problems += [
        f"unexpected: {n} (shape {_shape(a.shape)})" for n, a in given.items() if n not in expected
    ]
    for name, shape in expected.items():
        if name not in given:
            continue
        array = given[name]
        if tuple(array.shape) != shape:
            problems.append(
                f"mis-shaped: {name}: expected {_shape(shape)}, given {_shape(array.shape)}"
            )
        elif not (
            np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
        ):
            problems.append(f"not numeric: {name} (dtype {array.dtype})")
        elif not np.all(np.isfinite(array)):
            problems.append(f"non-finite values: {name}")
    if problems:
        raise ValueError(
            f"cannot import {source}: {len(problems)} tensor(s) do not fit the model "
            "(are the architecture, sizes and crop size configured as in the original run?)\n  "
            + "\n  ".join(problems)
        )

    values: dict[int, tuple] = {}  # id(variable) -> (variable, new value)
    written: dict[tuple, str] = {}  # (id(variable), part) -> the name that wrote it
    conflicts = []
    for entry in entries:
        variable = entry.variable
        block = given[entry.name] if entry.rows is None else given[entry.name][entry.rows]
        if id(variable) not in values:
            values[id(variable)] = (variable, np.array(variable.numpy()))
        target = values[id(variable)][1]
        if entry.part is not None:
            target = target[entry.part]
        value = np.asarray(entry.to_ours(block), dtype=target.dtype)
        if value.shape != target.shape:  # a table error, never the user's
            raise AssertionError(f"{entry.name}: {value.shape} does not fit {target.shape}")
        key = (id(variable), entry.part)
        if key in written:
            if not np.array_equal(target, value):
                conflicts.append(f"{entry.name} differs from {written[key]}")
            continue
        target[...] = value
        written[key] = entry.name
    if conflicts:
        raise ValueError(
            f"cannot import {source}: tensors that fill the same weight differ "
            "(the model shares them, e.g. the positional embedding with obj_fn.pos_embed "
            "'backbone'):\n  " + "\n  ".join(conflicts)
        )
    for variable, value in values.values():
        variable.assign(value)
    return len(expected)


def import_state_dict(model, state_dict: Mapping, source: str = "the state dict") -> int:
    """Loads the original's ``model.state_dict()`` into a built ``ObjectCentricModel``.

    Args:
        model: built, configured as the original run (see ``scripts/import_original.py``).
        state_dict: original name -> array in PyTorch layout (numpy arrays, CPU
            torch tensors, anything ``np.asarray`` takes).
        source: how error messages name the state dict (e.g. its file).

    Returns:
        The number of tensors imported.

    Raises:
        ValueError: naming every missing, unexpected and mis-shaped tensor at once, or a
            part of ``model`` that the original does not have. Nothing is assigned then.
    """
    return assign(parameter_map(model), state_dict, source)


def export_state_dict(model) -> dict[str, np.ndarray]:
    """The model's weights under the original's names, in PyTorch layouts (numpy arrays)."""
    out: dict[str, np.ndarray] = {}
    for entry in parameter_map(model):
        value = np.asarray(entry.variable.numpy())
        if entry.part is not None:
            value = value[entry.part]
        full = out.setdefault(entry.name, np.zeros(entry.shape, value.dtype))
        full[entry.rows if entry.rows is not None else ...] = entry.to_original(value)
    return out
