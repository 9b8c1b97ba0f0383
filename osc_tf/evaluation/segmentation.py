"""Object discovery from slot attention: Otsu masks, IoU / Dice, FG-ARI / ARI, mBO.

Every function is TensorFlow ops on batches and runs eagerly or in a
``tf.function``; ``SegmentationMetrics`` accumulates per-image values over test
batches and returns plain floats. Letters: B batch, K slots, N = h·w patch
tokens, E ground-truth entities (entity 0 is the background), S crop side,
P = S·S pixels.

Definitions (see also README "Evaluation metrics"); the defaults first, then
the alternatives that reproduce the original study's protocol (gin/eval/original.gin):

- Slot maps: a decoder's pixel masks ``[B,K,R,R]`` as they are (resized
  bilinearly when R ≠ S), or ``attention [B,K,N]`` reshaped to the ``h×w`` patch grid and
  upsampled bilinearly (half-pixel centres) to ``[B,K,S,S]``; with
  ``upsampling="nearest"`` each pixel takes the value of patch
  ``floor(i · h / S)`` (PyTorch's ``interpolate(mode="nearest")``; plain
  replication when S is a multiple of h).
- Objects of an image: entities ``e >= 1`` with ``visibility[b, e]`` and at
  least one pixel in ``masks[b, e]`` (an entity cropped out of the view is not
  an object of that view); with ``objects="visible"`` every visible entity
  ``e >= 1``, so a visible object without a pixel in the crop is an object
  that scores 0.
- IoU / Dice: each slot map is binarised with Otsu's threshold (its own
  256-bin histogram); the binary slot masks are matched one-to-one to the
  objects by an exact Hungarian matching that maximises the total IoU; an
  object's IoU and Dice are those of its matched slot, 0 if it has none
  (fewer slots than objects). Per image the mean over its objects, then the
  mean over images. Soft Dice uses the min-max normalised soft maps,
  ``2·Σ m·g / (Σ m + Σ g)``, with its own matching; with
  ``soft_dice_normalization="none"`` it uses the upsampled maps as they are,
  which is the original code's Dice.
- ``match_background``: the background also takes part in the matchings (it
  may take a slot from an object) but never enters a mean.
- Ground-truth masks that overlap (the original's bilinear mask resize, see
  ``MultiObjectData.test_mask_resize``) are scored as given: IoU / Dice / mBO
  per entity; ARI and FG-ARI count a pixel of two entities once for each.
- mBO: predicted masks are the argmax partition (each pixel to the slot with
  the largest upsampled map); an object's best overlap is its largest IoU with
  any of these masks; mean per image, then over images.
- FG-ARI: adjusted Rand index between the ground-truth entity of each pixel and
  its argmax slot over the pixels of non-background entities (as in DeepMind's
  multi_object_datasets); ARI the same over all pixels, background included.
  When both partitions are a single cluster (or there are < 2 pixels) ARI is 1.
- An image without objects adds nothing to IoU / Dice / mBO, an image without
  foreground pixels nothing to FG-ARI; the result counts both. No metric of an
  image is NaN; a mean over zero images is NaN.
"""

import math

import numpy as np
import tensorflow as tf

from osc_tf.matching import linear_sum_assignment

UPSAMPLING = ("bilinear", "nearest")
OBJECTS = ("with_pixels", "visible")
SOFT_DICE_NORMALIZATION = ("minmax", "none")


def _check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def upsample_attention(attention: tf.Tensor, size: int, method: str = "bilinear") -> tf.Tensor:
    """Reshapes slot attention to its square patch grid and upsamples it to the crop.

    Args:
        attention: [B, K, N] with N = h·h patch tokens in row-major order.
        size: crop side S of the output.
        method: ``"bilinear"`` (half-pixel centres, like ``align_corners=False``)
            or ``"nearest"``: pixel i takes patch ``min(floor(i · (h / S)), h - 1)``
            with the ratio in float32, as PyTorch's ``interpolate(mode="nearest")``
            (the original's evaluation); for S a multiple of h every patch
            becomes an (S/h)² block.

    Returns:
        float32 [B, K, S, S].
    """
    _check_choice("upsampling", method, UPSAMPLING)
    attention = tf.cast(attention, tf.float32)
    num_tokens = attention.shape[-1]
    if num_tokens is not None:
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f"N={num_tokens} tokens are not a square patch grid")
    else:
        side = tf.cast(tf.round(tf.sqrt(tf.cast(tf.shape(attention)[-1], tf.float32))), tf.int32)
    batch, slots = tf.shape(attention)[0], tf.shape(attention)[1]
    grid = tf.reshape(attention, [batch, slots, side, side])  # [B, K, h, h]
    if method == "nearest":
        ratio = tf.cast(side, tf.float32) / tf.cast(size, tf.float32)  # float32, as PyTorch
        rows = tf.cast(tf.floor(tf.cast(tf.range(size), tf.float32) * ratio), tf.int32)
        rows = tf.minimum(rows, side - 1)  # [S]
        return tf.gather(tf.gather(grid, rows, axis=2), rows, axis=3)  # [B, K, S, S]
    grid = tf.transpose(grid, [0, 2, 3, 1])  # [B, h, h, K]
    up = tf.image.resize(grid, [size, size], method="bilinear")  # [B, S, S, K]
    return tf.transpose(up, [0, 3, 1, 2])  # [B, K, S, S]


def slot_maps(maps: tf.Tensor, size: int, method: str = "bilinear") -> tf.Tensor:
    """Slot maps at the crop's resolution ``[B, K, S, S]``.

    Args:
        maps: attention ``[B, K, N]`` over the patch grid (``upsample_attention``) or
            pixel masks ``[B, K, R, R]`` (a decoder's), resized bilinearly when R ≠ S.
        size: crop side S.
        method: the attention's upsampling, see ``upsample_attention``.
    """
    if len(maps.shape) == 3:
        return upsample_attention(maps, size, method)
    maps = tf.cast(maps, tf.float32)
    if isinstance(size, int) and maps.shape[-1] == size:
        return maps
    resized = tf.image.resize(tf.transpose(maps, [0, 2, 3, 1]), [size, size], method="bilinear")
    return tf.transpose(resized, [0, 3, 1, 2])  # [B, K, S, S]


def otsu_threshold(maps: tf.Tensor, num_bins: int = 256) -> tf.Tensor:
    """Otsu's threshold of every map, from its own histogram over [min, max].

    The histogram (of float32 values) has ``num_bins`` equal bins spanning each map's range; the
    threshold is the centre of the last bin of the lower class of the split
    that maximises the between-class variance (as ``skimage.filters.threshold_otsu``).
    A constant map's threshold is its value.

    Args:
        maps: [..., H, W] real values.
        num_bins: histogram bins.

    Returns:
        float32 [...] thresholds; ``maps > threshold`` is the foreground.
    """
    maps = tf.convert_to_tensor(maps)
    lead = tf.shape(maps)[:-2]
    x = tf.reshape(tf.cast(maps, tf.float32), [-1, tf.reduce_prod(tf.shape(maps)[-2:])])  # [R, P]
    rows = tf.shape(x)[0]
    lo = tf.reduce_min(x, axis=1, keepdims=True)  # [R, 1]
    width = tf.reduce_max(x, axis=1, keepdims=True) - lo  # [R, 1]
    # Bins in float32 (a value within float32 rounding of an edge may fall in either bin).
    bins = tf.cast(tf.floor((x - lo) * tf.math.divide_no_nan(float(num_bins), width)), tf.int32)
    bins = tf.clip_by_value(bins, 0, num_bins - 1)  # the maximum goes to the last bin
    ids = bins + tf.range(rows)[:, None] * num_bins  # [R, P]
    size = rows * num_bins
    counts = tf.math.bincount(ids, minlength=size, maxlength=size)  # int32 [R·num_bins]
    counts = tf.cast(tf.reshape(counts, [rows, num_bins]), tf.float64)  # [R, num_bins]
    lo, width = tf.cast(lo, tf.float64), tf.cast(width, tf.float64)
    steps = tf.range(num_bins, dtype=tf.float64)[None, :] + 0.5
    centres = lo + steps * width / num_bins  # [R, num_bins]
    mass = counts * centres
    w_low = tf.cumsum(counts, axis=1)[:, :-1]  # bins 0..i
    w_high = tf.cumsum(counts, axis=1, reverse=True)[:, 1:]  # bins i+1..
    mean_low = tf.math.divide_no_nan(tf.cumsum(mass, axis=1)[:, :-1], w_low)
    mean_high = tf.math.divide_no_nan(tf.cumsum(mass, axis=1, reverse=True)[:, 1:], w_high)
    between = w_low * w_high * tf.square(mean_low - mean_high)  # [R, num_bins - 1]
    best = tf.argmax(between, axis=1, output_type=tf.int32)  # first maximum
    threshold = tf.gather(centres, best, batch_dims=1)  # [R]
    return tf.reshape(tf.cast(threshold, tf.float32), lead)


def otsu_masks(maps: tf.Tensor, num_bins: int = 256) -> tf.Tensor:
    """Binarises every map [..., H, W] at its Otsu threshold: bool [..., H, W]."""
    threshold = otsu_threshold(maps, num_bins)
    return tf.cast(maps, tf.float32) > threshold[..., None, None]


def _overlaps(true: tf.Tensor, pred: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Intersections [B, E, K] and summed areas [B, E, K] of masks [B,E,P] and [B,K,P]."""
    inter = tf.einsum("bep,bkp->bek", true, pred)  # [B, E, K]
    areas = tf.reduce_sum(true, -1)[:, :, None] + tf.reduce_sum(pred, -1)[:, None, :]
    return inter, areas


def pairwise_iou(true: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """IoU of every ground-truth mask with every predicted mask.

    Args:
        true: [B, E, P] masks (bool or 0/1).
        pred: [B, K, P] masks (bool or 0/1).

    Returns:
        float32 [B, E, K]; 0 where both masks are empty.
    """
    inter, areas = _overlaps(tf.cast(true, tf.float32), tf.cast(pred, tf.float32))
    return tf.math.divide_no_nan(inter, areas - inter)


def pairwise_dice(true: tf.Tensor, pred: tf.Tensor) -> tf.Tensor:
    """Dice ``2·Σ t·p / (Σ t + Σ p)`` of every pair; masks [B,E,P], [B,K,P] (binary or soft)."""
    inter, areas = _overlaps(tf.cast(true, tf.float32), tf.cast(pred, tf.float32))
    return tf.math.divide_no_nan(2.0 * inter, areas)


def match_objects(score: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """One-to-one matching of objects to slots maximising the total score.

    Rows that are not valid get score 0, and the problem is padded with zero
    rows or columns to a square ``max(E, K)``, so both E > K and E < K work: an
    object matched to a padding column has no slot.

    Args:
        score: [B, E, K] non-negative scores (e.g. IoU).
        valid: bool [B, E], the rows to match.

    Returns:
        int32 [B, E]: the matched slot of each valid object, -1 for none.
    """
    score = tf.where(valid[:, :, None], score, tf.zeros_like(score))  # [B, E, K]
    num_e, num_k = tf.shape(score)[1], tf.shape(score)[2]
    side = tf.maximum(num_e, num_k)
    square = tf.pad(score, [[0, 0], [0, side - num_e], [0, side - num_k]])  # [B, n, n]
    cols = linear_sum_assignment(square, maximize=True)[:, :num_e]  # [B, E]
    return tf.where(valid & (cols < num_k), cols, -1)


def _matched(values: tf.Tensor, slot: tf.Tensor) -> tf.Tensor:
    """values [B, E, K] at the matched slot [B, E] (-1 gives 0): [B, E]."""
    picked = tf.gather(values, tf.maximum(slot, 0), batch_dims=2)
    return tf.where(slot >= 0, picked, tf.zeros_like(picked))


def adjusted_rand_index(true_masks: tf.Tensor, pred_masks: tf.Tensor) -> tf.Tensor:
    """Adjusted Rand index of two partitions given as one-hot masks.

    Pixels whose true mask is all zero are ignored (DeepMind's convention, which
    gives FG-ARI when the background is left out of ``true_masks``). If the
    expected and the maximal index coincide (both partitions a single cluster,
    or fewer than 2 pixels) the ARI is 1, as in scikit-learn.

    Args:
        true_masks: [B, E, P] one-hot over E (or all zero) per pixel.
        pred_masks: [B, K, P] one-hot over K per pixel.

    Returns:
        float64 [B].
    """
    # Counts are exact in float32 up to 2**24 pixels; combinatorics in float64.
    table = tf.einsum(
        "bep,bkp->bek", tf.cast(true_masks, tf.float32), tf.cast(pred_masks, tf.float32)
    )  # contingency [B, E, K]
    table = tf.cast(table, tf.float64)
    pairs = lambda n: n * (n - 1.0)  # 2 × (n choose 2); the 2 cancels
    n = tf.reduce_sum(table, axis=[1, 2])  # [B]
    index = tf.reduce_sum(pairs(table), axis=[1, 2])
    true_pairs = tf.reduce_sum(pairs(tf.reduce_sum(table, 2)), 1)  # [B]
    pred_pairs = tf.reduce_sum(pairs(tf.reduce_sum(table, 1)), 1)  # [B]
    # true·(pred/total): exact when pred == total, so the single-cluster case is exactly 0/0.
    expected = true_pairs * tf.math.divide_no_nan(pred_pairs, pairs(n))
    maximum = 0.5 * (true_pairs + pred_pairs)
    denominator = maximum - expected
    ari = tf.math.divide_no_nan(index - expected, denominator)
    return tf.where(tf.equal(denominator, 0.0), tf.ones_like(ari), ari)


def _mean_over(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of values [B, E] over mask [B, E] per row; 0 for an empty row: [B]."""
    mask = tf.cast(mask, values.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(values * mask, 1), tf.reduce_sum(mask, 1))


def segmentation_metrics(
    attention: tf.Tensor,
    masks: tf.Tensor,
    visibility: tf.Tensor,
    num_bins: int = 256,
    match_background: bool = False,
    upsampling: str = "bilinear",
    objects: str = "with_pixels",
    soft_dice_normalization: str = "minmax",
) -> dict[str, tf.Tensor]:
    """Per-image object-discovery metrics of one batch (definitions in the module docstring).

    Args:
        attention: [B, K, N] slot attention over the patch grid, or pixel masks
            [B, K, R, R] (a decoder's; resized bilinearly to S when R ≠ S).
        masks: bool [B, E, S, S] ground-truth entity masks, entity 0 the background.
        visibility: bool [B, E] whether each entity is present.
        num_bins: Otsu histogram bins.
        match_background: also give the background a slot in the Hungarian
            matching (the original code's matching); it never enters the means.
        upsampling: ``"bilinear"`` or ``"nearest"`` (the original's), see
            ``upsample_attention`` (attention only).
        objects: ``"with_pixels"`` (visible entities with a pixel in ``masks``)
            or ``"visible"`` (every visible entity, the original's: one without
            a pixel scores 0).
        soft_dice_normalization: ``"minmax"`` (each soft map scaled to [0, 1])
            or ``"none"`` (the upsampled attention as it is, the original's).

    Returns:
        A dict of tensors. Per image [B]: ``iou``, ``dice``, ``soft_dice``,
        ``mbo`` (float32), ``fg_ari``, ``ari`` (float64), ``has_objects``,
        ``has_foreground`` (bool). Per entity [B, E]: ``objects`` (bool),
        ``slot`` (int32 matched slot, -1 none), ``object_iou``, ``object_dice``,
        ``object_soft_dice``, ``best_overlap``. Per image ``background_slot``
        (int32 [B], the background's slot with ``match_background``, else -1).
        Maps: ``soft_masks`` [B,K,S,S] (upsampled attention), ``binary_masks``
        bool [B,K,S,S] (Otsu), ``partition`` int32 [B,S,S] (argmax slot).
    """
    _check_choice("objects", objects, OBJECTS)
    _check_choice("soft_dice_normalization", soft_dice_normalization, SOFT_DICE_NORMALIZATION)
    masks = tf.convert_to_tensor(masks)
    size = masks.shape[-1] if masks.shape[-1] is not None else tf.shape(masks)[-1]
    soft = slot_maps(attention, size, upsampling)  # [B, K, S, S]
    binary = otsu_masks(soft, num_bins)  # [B, K, S, S]
    batch, slots = tf.shape(soft)[0], tf.shape(soft)[1]
    entities = tf.shape(masks)[1]
    true = tf.cast(tf.reshape(masks, [batch, entities, -1]), tf.float32)  # [B, E, P]
    flat_soft = tf.reshape(soft, [batch, slots, -1])  # [B, K, P]
    flat_binary = tf.reshape(binary, [batch, slots, -1])  # [B, K, P]

    not_background = tf.range(entities)[None, :] > 0  # [1, E]
    is_object = tf.cast(visibility, tf.bool) & not_background  # [B, E]
    if objects == "with_pixels":
        is_object &= tf.reduce_sum(true, -1) > 0
    background = ~not_background & match_background  # [1, E]
    to_match = is_object | background  # [B, E]

    iou_all = pairwise_iou(true, flat_binary)  # [B, E, K]
    slot = match_objects(iou_all, to_match)  # [B, E]
    object_iou = _matched(iou_all, slot)
    object_dice = _matched(pairwise_dice(true, flat_binary), slot)

    if soft_dice_normalization == "minmax":
        lo = tf.reduce_min(flat_soft, -1, keepdims=True)
        flat_soft = tf.math.divide_no_nan(
            flat_soft - lo, tf.reduce_max(flat_soft, -1, keepdims=True) - lo
        )
    soft_dice_all = pairwise_dice(true, flat_soft)  # [B, E, K]
    object_soft_dice = _matched(soft_dice_all, match_objects(soft_dice_all, to_match))

    partition = tf.argmax(soft, axis=1, output_type=tf.int32)  # [B, S, S]
    one_hot = tf.transpose(
        tf.one_hot(tf.reshape(partition, [batch, -1]), slots), [0, 2, 1]
    )  # [B,K,P]
    best_overlap = tf.reduce_max(pairwise_iou(true, one_hot), axis=-1)  # [B, E]

    foreground = true * tf.cast(not_background, tf.float32)[:, :, None]  # [B, E, P]
    return {
        "iou": _mean_over(object_iou, is_object),
        "dice": _mean_over(object_dice, is_object),
        "soft_dice": _mean_over(object_soft_dice, is_object),
        "mbo": _mean_over(best_overlap, is_object),
        "fg_ari": adjusted_rand_index(foreground, one_hot),
        "ari": adjusted_rand_index(true, one_hot),
        "has_objects": tf.reduce_any(is_object, axis=1),
        "has_foreground": tf.reduce_sum(foreground, axis=[1, 2]) > 0,
        "objects": is_object,
        "slot": tf.where(is_object, slot, -1),
        "background_slot": tf.where(to_match[:, 0], slot[:, 0], -1),
        "object_iou": object_iou * tf.cast(is_object, tf.float32),
        "object_dice": object_dice * tf.cast(is_object, tf.float32),
        "object_soft_dice": object_soft_dice * tf.cast(is_object, tf.float32),
        "best_overlap": best_overlap * tf.cast(is_object, tf.float32),
        "soft_masks": soft,
        "binary_masks": binary,
        "partition": partition,
    }


# One graph per input rank (attention [B,K,N], pixel masks [B,K,R,R]): reduce_retracing
# would otherwise relax a second rank to an unknown one.
_segmentation_metrics_graphs = {
    rank: tf.function(segmentation_metrics, reduce_retracing=True) for rank in (3, 4)
}

# Result key -> (per-image key, the flag saying whether an image counts).
_MEANS = {
    "iou": ("iou", "has_objects"),
    "dice": ("dice", "has_objects"),
    "soft_dice": ("soft_dice", "has_objects"),
    "mbo": ("mbo", "has_objects"),
    "fg_ari": ("fg_ari", "has_foreground"),
    "ari": ("ari", None),
}


class SegmentationMetrics:
    """Streaming object-discovery metrics over test batches.

    ``update`` runs ``segmentation_metrics`` in a ``tf.function`` and adds the
    per-image values to float64 sums; ``result`` returns the means over images
    (each metric over the images it is defined for) and the counts.

    Args:
        num_bins: Otsu histogram bins.
        match_background: give the background a slot in the matching (see
            ``segmentation_metrics``).
        upsampling: ``"bilinear"`` or ``"nearest"`` (the original's).
        objects: ``"with_pixels"`` or ``"visible"`` (the original's: a visible
            object without a pixel in the crop scores 0).
        soft_dice_normalization: ``"minmax"`` or ``"none"`` (the original's).
    """

    def __init__(
        self,
        num_bins: int = 256,
        match_background: bool = False,
        upsampling: str = "bilinear",
        objects: str = "with_pixels",
        soft_dice_normalization: str = "minmax",
    ):
        _check_choice("upsampling", upsampling, UPSAMPLING)
        _check_choice("objects", objects, OBJECTS)
        _check_choice("soft_dice_normalization", soft_dice_normalization, SOFT_DICE_NORMALIZATION)
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an integer >= 2, got {num_bins!r}")
        if not isinstance(match_background, bool):
            raise ValueError(f"match_background must be True or False, got {match_background!r}")
        self.num_bins = num_bins
        self.match_background = match_background
        self.upsampling = upsampling
        self.objects = objects
        self.soft_dice_normalization = soft_dice_normalization
        self.reset()

    def settings(self) -> dict:
        """The options that define the metrics (recorded in ``metrics.json``)."""
        return {
            "num_bins": self.num_bins,
            "match_background": self.match_background,
            "upsampling": self.upsampling,
            "objects": self.objects,
            "soft_dice_normalization": self.soft_dice_normalization,
        }

    def reset(self) -> None:
        self._sums = dict.fromkeys(_MEANS, 0.0)
        self._counts = {"num_images": 0, "num_images_with_objects": 0}
        self._counts |= {"num_images_with_foreground": 0, "num_objects": 0}

    def update(
        self, attention: tf.Tensor, masks: tf.Tensor, visibility: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """Adds a batch: attention [B,K,N] (or pixel masks [B,K,R,R]), masks [B,E,S,S] and
        visibility [B,E] (bool or 0/1).

        Returns the batch's per-image dict from ``segmentation_metrics`` (for figures).
        """
        attention = tf.convert_to_tensor(attention)
        if len(attention.shape) not in _segmentation_metrics_graphs:
            raise ValueError(
                f"slot maps must be attention [B, K, N] or masks [B, K, R, R], "
                f"got {attention.shape}"
            )
        out = _segmentation_metrics_graphs[len(attention.shape)](
            attention,
            tf.cast(masks, tf.bool),  # bool, or 0/1 numbers (CLEVR's visibility is float32)
            tf.cast(visibility, tf.bool),
            num_bins=self.num_bins,
            match_background=self.match_background,
            upsampling=self.upsampling,
            objects=self.objects,
            soft_dice_normalization=self.soft_dice_normalization,
        )
        flags = {k: out[k].numpy() for k in ("has_objects", "has_foreground")}
        for name, (key, flag) in _MEANS.items():
            values = out[key].numpy().astype(np.float64)
            self._sums[name] += float(values.sum() if flag is None else values[flags[flag]].sum())
        self._counts["num_images"] += int(flags["has_objects"].shape[0])
        self._counts["num_images_with_objects"] += int(flags["has_objects"].sum())
        self._counts["num_images_with_foreground"] += int(flags["has_foreground"].sum())
        self._counts["num_objects"] += int(out["objects"].numpy().sum())
        return out

    def result(self) -> dict[str, float]:
        """Means over images and counts, as plain floats; a mean over no image is NaN."""
        counts = {
            "has_objects": self._counts["num_images_with_objects"],
            "has_foreground": self._counts["num_images_with_foreground"],
            None: self._counts["num_images"],
        }
        out = {}
        for name, (_, flag) in _MEANS.items():
            out[name] = self._sums[name] / counts[flag] if counts[flag] else float("nan")
        return out | {k: float(v) for k, v in self._counts.items()}
