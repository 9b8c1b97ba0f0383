"""The five self-supervised losses between two views, and their weighted total.

Layout (DESIGN.md): rows ``0..B-1`` are view 0 of images ``0..B-1``, rows
``B..2B-1`` view 1 of the same images; object tensors are ``[2B, K, D]``.
``l2n(x) = x / max(|x|_2, 1e-10)`` on the last axis and
``CE(row, target) = logsumexp(row) - row[target]``.

Global term (one vector per view):
  ``global_contrastive``  "ctr"  InfoNCE; the other view of the same image is the positive.
  ``global_similarity``   "sim"  negative cosine to the other view's stop-gradient features.
Object term (K slots per view, matched across views by the Hungarian solver):
  ``object_contrastive_all``    "ctr_all"  negatives: every slot of every image.
  ``object_contrastive_image``  "ctr_img"  negatives: the slots of the same image.
  ``object_similarity``         "sim_img"  cosine between matched slots.
Reconstruction term (a model with a decoder, e.g. ``MaskDecoder``):
  ``reconstruction_mse``  "mse"  squared error of the slots' reconstruction of each view.

Distributed semantics: inside a ``tf.distribute`` replica each function returns
that replica's share of the GLOBAL-batch mean (its rows' sum divided by the
global row count), so SUM-reducing the replicas' values gives the global loss
and summing their gradients (what Keras and the optimizers do) gives the
gradient of the global loss. ``global_contrastive`` and ``object_contrastive_all``
all-gather the projections so negatives come from the whole global batch. In
the default replica context (no strategy) every function is a plain mean.
"""

import dataclasses
from collections.abc import Callable

import tensorflow as tf

from osc_tf.matching import inverse_permutation, linear_sum_assignment

_EPSILON = 1e-10


def _l2n(x: tf.Tensor) -> tf.Tensor:
    """x / max(|x|, 1e-10) on the last axis (as ``l2_normalize`` with eps on |x|^2)."""
    return tf.math.l2_normalize(x, axis=-1, epsilon=_EPSILON**2)


def _as_float(x) -> tf.Tensor:
    """Float32, or float64 if given float64 (low-precision inputs are upcast)."""
    x = tf.convert_to_tensor(x)
    return x if x.dtype == tf.float64 else tf.cast(x, tf.float32)


def _cross_entropy(logits: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """logsumexp(row) - row[target] for logits [R, C], target int [R]; returns [R]."""
    picked = tf.gather(logits, target, batch_dims=1)  # [R]
    return tf.reduce_logsumexp(logits, axis=-1) - picked


def _mask(logits: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Sets logits[r, index[r]] to -inf; logits [R, C], index int [R]."""
    hit = tf.one_hot(index, tf.shape(logits)[-1], on_value=True, off_value=False)
    return tf.where(hit, tf.constant(-float("inf"), logits.dtype), logits)


def _num_images(x: tf.Tensor) -> tf.Tensor:
    """Local number of images b of a two-view tensor [2b, ...] (int32 scalar)."""
    return tf.shape(x)[0] // 2


def _global_images(b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Global image count B and this replica's first global image index.

    In the default replica context these are (b, 0); in a ``tf.distribute``
    replica they come from an all-gather of the replicas' local counts, so
    unequal per-replica batches are handled too.
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return b, tf.constant(0, tf.int32)
    counts = ctx.all_gather(tf.reshape(b, [1]), axis=0)  # [R]
    replica = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
    return tf.reduce_sum(counts), tf.reduce_sum(counts[:replica])


def _gather_views(x: tf.Tensor) -> tf.Tensor:
    """All-gathers a local two-view tensor [2b, ...] into the global layout [2B, ...].

    Each replica holds [its view-0 rows; its view-1 rows]; the result holds all
    view-0 rows in replica order, then all view-1 rows. Gradients flow back to
    every replica (``ReplicaContext.all_gather`` all-reduces them).
    """
    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return x
    b = _num_images(x)
    pairs = tf.stack([x[:b], x[b:]], axis=1)  # [b, 2, ...]
    pairs = ctx.all_gather(pairs, axis=0)  # [B, 2, ...]
    return tf.concat([pairs[:, 0], pairs[:, 1]], axis=0)  # [2B, ...]


def _match_views(a: tf.Tensor, b: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per image, the assignment maximising sum_k <a_k, b_cols[k]>.

    Args:
        a, b: [b, K, D] slots of view 0 and view 1.

    Returns:
        cols int32 [b, K] (view-0 slot k -> view-1 slot cols[k]) and its inverse
        int32 [b, K] (view-1 slot l -> view-0 slot inv[l]).
    """
    cos = tf.einsum("bkd,bld->bkl", a, b)  # [b, K, K]
    cols = linear_sum_assignment(cos, maximize=True)
    return cols, inverse_permutation(cols)


def global_contrastive(projections: tf.Tensor, temperature: float = 0.1) -> tf.Tensor:
    """ "ctr": InfoNCE between the two views of each image, over the global batch.

    Args:
        projections: [2B, E] global projections of both views.
        temperature: logits are cosines divided by this.

    Returns:
        Scalar: mean over the 2B rows of CE(z_i z^T / t with z_i z_i -> -inf, (i + B) mod 2B).
    """
    z = _l2n(_as_float(projections))  # [2b, E]
    b = _num_images(z)
    big_b, first = _global_images(b)
    z_all = _gather_views(z)  # [2B, E]
    local = tf.range(b) + first  # [b] global image indices
    rows = tf.concat([local, local + big_b], axis=0)  # [2b] global rows of the local rows
    logits = _mask(tf.matmul(z, z_all, transpose_b=True) / temperature, rows)  # [2b, 2B]
    loss = _cross_entropy(logits, (rows + big_b) % (2 * big_b))  # [2b]
    return tf.reduce_sum(loss) / tf.cast(2 * big_b, loss.dtype)


def global_similarity(features: tf.Tensor, projections: tf.Tensor) -> tf.Tensor:
    """ "sim": negative cosine between a view's projection and the other view's features.

    Args:
        features: [2B, D] global features (stop-gradient targets).
        projections: [2B, D] global projections (predictions), same width D.

    Returns:
        Scalar in [-1, 1]: -mean_i <l2n(sg(features))_(i+B mod 2B), l2n(projections)_i>.
    """
    f = _l2n(tf.stop_gradient(_as_float(features)))  # [2b, D]
    p = _l2n(_as_float(projections))  # [2b, D]
    _check_same_width(f, p, "global_similarity", "features", "projections")
    b = _num_images(f)
    big_b, _ = _global_images(b)
    f_other = tf.concat([f[b:], f[:b]], axis=0)  # [2b, D] row i holds the other view
    total = tf.reduce_sum(f_other * p)
    return -total / tf.cast(2 * big_b, total.dtype)


def object_contrastive_all(
    slot_projections: tf.Tensor, temperature: float = 0.1, return_matching: bool = False
):
    """ "ctr_all": InfoNCE per slot against every slot of every image and view.

    Each image's view-0 slots are Hungarian-matched to its view-1 slots by cosine;
    a slot's positive is its match in the other view of the same image.

    Args:
        slot_projections: [2B, K, E] slot projections of both views.
        temperature: logits are cosines divided by this (the matching uses cosines).
        return_matching: also return the matching.

    Returns:
        Scalar mean CE over the 2BK slots; with ``return_matching`` a tuple
        (loss, cols int32 [B, K]: view-0 slot k of image b matches view-1 slot cols[b, k]).
    """
    z = _l2n(_as_float(slot_projections))  # [2b, K, E]
    b, k = _num_images(z), tf.shape(z)[1]
    cols, inv = _match_views(z[:b], z[b:])  # [b, K] each
    big_b, first = _global_images(b)
    z_all = _gather_views(z)  # [2B, K, E]
    width = tf.shape(z)[2]
    logits = tf.matmul(
        tf.reshape(z, [-1, width]),  # [2bK, E]
        tf.reshape(z_all, [-1, width]),  # [2BK, E]
        transpose_b=True,
    )  # [2bK, 2BK]
    image = (tf.range(b) + first)[:, None]  # [b, 1] global image indices
    slot = tf.range(k)[None, :]  # [1, K]
    own = tf.concat([image * k + slot, (image + big_b) * k + slot], axis=0)  # [2b, K]
    target = tf.concat([(image + big_b) * k + cols, image * k + inv], axis=0)  # [2b, K]
    logits = _mask(logits / temperature, tf.reshape(own, [-1]))
    loss = _cross_entropy(logits, tf.reshape(target, [-1]))  # [2bK]
    loss = tf.reduce_sum(loss) / tf.cast(2 * big_b * k, loss.dtype)
    return (loss, cols) if return_matching else loss


def object_contrastive_image(
    slot_projections: tf.Tensor, temperature: float = 0.1, return_matching: bool = False
):
    """ "ctr_img": InfoNCE per slot against the 2K slots of its own image (both views).

    Args:
        slot_projections: [2B, K, E] slot projections of both views.
        temperature: logits are cosines divided by this (the matching uses cosines).
        return_matching: also return the matching.

    Returns:
        Scalar mean CE over the 2BK slots (rows [z0_k z0^T (own -> -inf), z0_k z1^T] / t with
        target K + cols[k] for view 0, [z1_l z0^T, z1_l z1^T (own -> -inf)] / t with target
        inv[l] for view 1); with ``return_matching`` a tuple (loss, cols int32 [B, K]).
    """
    z = _l2n(_as_float(slot_projections))  # [2b, K, E]
    b, k = _num_images(z), tf.shape(z)[1]
    z0, z1 = z[:b], z[b:]  # [b, K, E]
    cols, inv = _match_views(z0, z1)  # [b, K]
    eye = tf.eye(k, dtype=tf.bool)  # [K, K]
    neg_inf = tf.constant(-float("inf"), z.dtype)
    s00 = tf.where(eye, neg_inf, tf.einsum("bke,ble->bkl", z0, z0))  # [b, K, K]
    s11 = tf.where(eye, neg_inf, tf.einsum("bke,ble->bkl", z1, z1))  # [b, K, K]
    s01 = tf.einsum("bke,ble->bkl", z0, z1)  # [b, K, K]
    rows0 = tf.concat([s00, s01], axis=-1)  # [b, K, 2K]
    rows1 = tf.concat([tf.transpose(s01, [0, 2, 1]), s11], axis=-1)  # [b, K, 2K]
    logits = tf.reshape(tf.concat([rows0, rows1], axis=0), [-1, 2 * k]) / temperature  # [2bK, 2K]
    target = tf.reshape(tf.concat([k + cols, inv], axis=0), [-1])  # [2bK]
    loss = _cross_entropy(logits, target)  # [2bK]
    big_b, _ = _global_images(b)
    loss = tf.reduce_sum(loss) / tf.cast(2 * big_b * k, loss.dtype)
    return (loss, cols) if return_matching else loss


def object_similarity(
    slot_features: tf.Tensor, slot_projections: tf.Tensor, return_matching: bool = False
):
    """ "sim_img": cosine between each slot's projection and its match's features.

    Slots are matched per image by Hungarian on the cosines of the (stop-gradient)
    features of the two views, not of the projections.

    Args:
        slot_features: [2B, K, D] slots (stop-gradient targets).
        slot_projections: [2B, K, D] slot projections (predictions), same width D.
        return_matching: also return the matching.

    Returns:
        Scalar in [0, 1]: (1 - mean cosine) / 2; with ``return_matching`` a tuple
        (loss, cols int32 [B, K]).
    """
    fh = _l2n(tf.stop_gradient(_as_float(slot_features)))  # [2b, K, D]
    ph = _l2n(_as_float(slot_projections))  # [2b, K, D]
    _check_same_width(fh, ph, "object_similarity", "slot_features", "slot_projections")
    b, k = _num_images(fh), tf.shape(fh)[1]
    cols, inv = _match_views(fh[:b], fh[b:])  # [b, K]
    target = tf.concat(
        [tf.gather(fh[b:], cols, batch_dims=1), tf.gather(fh[:b], inv, batch_dims=1)], axis=0
    )  # [2b, K, D]: view-0 slots see their view-1 match and vice versa
    total = tf.reduce_sum((1.0 - tf.reduce_sum(ph * target, axis=-1)) / 2.0)
    big_b, _ = _global_images(b)
    loss = total / tf.cast(2 * big_b * k, total.dtype)
    return (loss, cols) if return_matching else loss


def reconstruction_mse(reconstruction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """ "mse": mean squared error between the decoder's reconstruction and its target.

    Args:
        reconstruction: [R, h, w, C] the slots' reconstruction of each row (view).
        target: [R, h, w, C] what it reconstructs (stop-gradient), e.g. the
            normalised images.

    Returns:
        Scalar: the mean over rows of each row's mean squared error over its
        pixels and channels.
    """
    prediction = _as_float(reconstruction)
    target = tf.stop_gradient(tf.cast(target, prediction.dtype))
    rows = tf.shape(prediction)[0]
    error = tf.reduce_mean(tf.reshape(tf.square(prediction - target), [rows, -1]), axis=1)
    global_rows, _ = _global_images(rows)
    return tf.reduce_sum(error) / tf.cast(global_rows, error.dtype)


def _check_same_width(a: tf.Tensor, b: tf.Tensor, fn: str, name_a: str, name_b: str) -> None:
    if a.shape[-1] is not None and b.shape[-1] is not None and a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{fn} compares {name_a} and {name_b} by cosine, so they need the same last "
            f"dimension; got {a.shape[-1]} and {b.shape[-1]} (set the projection width "
            "equal to the feature width)"
        )


@dataclasses.dataclass(frozen=True)
class Term:
    """How ``Objective`` calls a loss function: the routing from model outputs to it.

    Attributes:
        kind: ``"global"``, ``"object"`` or ``"reconstruction"``: which term of the
            objective it can be.
        name: its short name in the logged keys (``loss_<kind>_<name>``).
        inputs: loss parameter -> the model output key passed to it.
        matching: called with ``return_matching=True`` (returns ``(loss, cols)``).
    """

    kind: str
    name: str
    inputs: dict[str, str]
    matching: bool = False


#: Every loss ``Objective`` can call, by function name (a loss added here is usable
#: as ``Objective.<kind>_loss`` in gin once registered).
TERMS = {
    "global_contrastive": Term("global", "ctr", {"projections": "global_projection"}),
    "global_similarity": Term(
        "global", "sim", {"features": "global_features", "projections": "global_projection"}
    ),
    "object_contrastive_all": Term(
        "object", "ctr_all", {"slot_projections": "slot_projection"}, matching=True
    ),
    "object_contrastive_image": Term(
        "object", "ctr_img", {"slot_projections": "slot_projection"}, matching=True
    ),
    "object_similarity": Term(
        "object",
        "sim_img",
        {"slot_features": "slots", "slot_projections": "slot_projection"},
        matching=True,
    ),
    "reconstruction_mse": Term(
        "reconstruction",
        "mse",
        {"reconstruction": "reconstruction", "target": "reconstruction_target"},
    ),
}


class Objective:
    """The training objective: weighted global, object and reconstruction terms.

    Each term is a loss function chosen by reference (``@global_contrastive``) or
    None; ``TERMS`` says which model outputs it reads. A term with weight 0 is
    still computed and logged but left out of the total.

    Args:
        global_loss: e.g. ``global_contrastive``, ``global_similarity`` or None.
        global_weight: weight of the global term.
        object_loss: e.g. ``object_contrastive_image``, ``object_contrastive_all``,
            ``object_similarity`` or None.
        object_weight: weight of the object term.
        reconstruction_loss: ``reconstruction_mse`` (needs a model with a decoder) or None.
        reconstruction_weight: weight of the reconstruction term.
    """

    def __init__(
        self,
        global_loss: Callable | None = global_contrastive,
        global_weight: float = 1.0,
        object_loss: Callable | None = object_contrastive_image,
        object_weight: float = 1.0,
        reconstruction_loss: Callable | None = None,
        reconstruction_weight: float = 1.0,
    ):
        if global_loss is None and object_loss is None and reconstruction_loss is None:
            raise ValueError(
                "Objective needs at least one of global_loss, object_loss and reconstruction_loss"
            )
        self.terms = [
            (_term(kind, fn), fn, float(weight))
            for kind, fn, weight in (
                ("global", global_loss, global_weight),
                ("object", object_loss, object_weight),
                ("reconstruction", reconstruction_loss, reconstruction_weight),
            )
            if fn is not None
        ]
        self.global_loss = global_loss
        self.global_weight = float(global_weight)
        self.object_loss = object_loss
        self.object_weight = float(object_weight)
        self.reconstruction_loss = reconstruction_loss
        self.reconstruction_weight = float(reconstruction_weight)

    def __call__(self, outputs: dict) -> dict:
        """Computes every term.

        Args:
            outputs: the model's output dict: ``global_features [2B, D]``,
                ``global_projection [2B, E]``, for object losses
                ``slots [2B, K, D]``, ``slot_projection [2B, K, E]``, for the
                reconstruction ``reconstruction`` and ``reconstruction_target``.

        Returns:
            ``{"loss": weighted total, "loss_global_<name>": scalar,
            "loss_object_<name>": scalar, "matching": int32 [B, K]}`` where
            ``<name>`` is the term's short name (``ctr``, ``sim``, ``ctr_all``,
            ``ctr_img``, ``sim_img``); absent terms have no key and ``matching``
            is present when the object loss matches. Inside a ``tf.distribute``
            replica each value is that replica's share of the global-batch value
            (SUM-reduce to log it) and ``matching`` covers the replica's own images.
        """
        result, total = {}, None
        for term, fn, weight in self.terms:
            missing = sorted(set(term.inputs.values()) - set(outputs))
            if missing:
                raise ValueError(
                    f"the {term.kind} loss {fn.__name__} needs the model output {missing[0]!r}, "
                    f"but the outputs have only {sorted(outputs)}; use a model with "
                    f"{'a decoder' if term.kind == 'reconstruction' else 'an object branch'} "
                    f"or set Objective.{term.kind}_loss = None"
                )
            kwargs = {arg: outputs[key] for arg, key in term.inputs.items()}
            value = fn(**kwargs, return_matching=True) if term.matching else fn(**kwargs)
            if term.matching:
                value, result["matching"] = value
            result[f"loss_{term.kind}_{term.name}"] = value
            if weight != 0.0:
                total = weight * value if total is None else total + weight * value
        result["loss"] = total if total is not None else tf.zeros([], value.dtype)
        return result


def _term(kind: str, fn: Callable) -> Term:
    """The routing of ``fn`` as the ``kind`` term, failing loudly for a loss it cannot be."""
    term = TERMS.get(getattr(fn, "__name__", None))
    if term is None:
        raise ValueError(
            f"Objective.{kind}_loss = {fn!r} is not a loss of osc_tf.losses.TERMS "
            f"(one of {sorted(TERMS)}); add it there with the model outputs it reads"
        )
    if term.kind != kind:
        raise ValueError(
            f"Objective.{kind}_loss = {fn.__name__}: it is a loss of the {term.kind} "
            f"term, set it as Objective.{term.kind}_loss"
        )
    return term
