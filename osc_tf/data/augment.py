"""Two-view image augmentation with explicit per-image seeds (tf.data friendly).

Augmentation happens in two steps so that all the work except one random draw is
batched:

1. ``TwoViewAugment.draw(seeds)`` turns per-image seeds int [B, 2] into the uniforms
   of both views with a counter-based integer hash, vectorised over the batch (one
   ``tf.random.stateless_*`` call per image inside ``Dataset.map`` would cost more
   than the rest of the pipeline). The same seed always gives the same views —
   validation uses a fixed seed per image, training a fresh one per image and epoch.
2. ``TwoViewAugment.apply(images, draws, crop_size)`` runs on the batch: it turns the
   uniforms into parameters (``params``), cuts and resizes all 2B crops at once
   (bilinear, sampling like ``tf.image.crop_and_resize``; a flip is a box with
   x1 > x2), and applies the colour jitter as one 3x3 matrix + offset per view,
   then ImageNet normalisation; both steps are XLA-compiled.
   Rows 0..B-1 are view 0, rows B..2B-1 view 1 of the same images.

The recipe follows the original study: random resized crop (area ``scale``, aspect
``ratio``; torchvision's 10-attempt rule with its centre-crop fallback), horizontal
flip, brightness (additive delta, as ``tf.image.stateless_random_brightness``),
saturation, hue, ImageNet normalisation; optional grayscale, Gaussian blur and
solarize. Colour ops are linear so they fuse into one matrix: saturation blends with
the luma (torchvision's ``adjust_saturation``) and hue rotates the chroma plane of
YIQ (close to an HSV hue shift for the small angles used; HSV round trips cost 5x
more). Values are clipped to [0, 1] once, after the colour ops. Keras 3's
augmentation layers draw from stateful seed generators, which cannot give per-image
fixed views, so the pixel work uses stateless ``tf.image``/``tf.nn`` ops.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes
_MAX_BLUR_RADIUS = 6  # kernel taps each side; sigma is capped at radius / 3
_NUM_DRAWS = 4 * _ATTEMPTS + 8  # uniforms per view: crop attempts + 8 scalars
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
_RGB_TO_YIQ = np.array(  # row vectors: yiq = rgb @ _RGB_TO_YIQ
    [[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]], np.float32
)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)
_MASK32 = 0xFFFFFFFF
_HASH_MULTIPLIER = 0x45D9F3B  # < 2**31, so products of 32-bit values fit in int64


def _hash32(x: tf.Tensor) -> tf.Tensor:
    """Integer hash to [0, 2**32) of the low 32 bits of int64 x (multiply-xorshift)."""
    x = tf.bitwise.bitwise_and(x, _MASK32)
    for _ in range(2):
        x = tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x)
        x = tf.bitwise.bitwise_and(x * _HASH_MULTIPLIER, _MASK32)
    return tf.bitwise.bitwise_xor(tf.bitwise.right_shift(x, 16), x)


def hash_uniform(seeds: tf.Tensor, num: int) -> tf.Tensor:
    """Uniforms in [0, 1) float32 [..., num], a pure function of seeds int [..., 2]."""
    seeds = tf.cast(seeds, tf.int64)
    low = tf.bitwise.bitwise_and(seeds, _MASK32)
    high = tf.bitwise.bitwise_and(tf.bitwise.right_shift(seeds, 32), _MASK32)
    words = tf.bitwise.bitwise_xor(low, high)  # [..., 2] 32-bit words
    key = _hash32(tf.bitwise.bitwise_xor(_hash32(words[..., 0] + 0x9E3779B9), words[..., 1]))
    counters = _hash32(tf.range(num, dtype=tf.int64) * 0x632BE5AB + 0x2545F491)  # [num]
    bits = _hash32(tf.bitwise.bitwise_xor(key[..., None], counters))  # [..., num]
    return tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) / float(1 << 24)


def normalize(images: tf.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tf.Tensor:
    """Float images in [0, 1] [..., 3] -> normalised float32."""
    return (tf.cast(images, tf.float32) - tf.constant(mean)) / tf.constant(std)


def denormalize(images: tf.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> tf.Tensor:
    """Normalised images [..., 3] -> float32 in [0, 1] (clipped), e.g. for figures."""
    images = tf.cast(images, tf.float32) * tf.constant(std) + tf.constant(mean)
    return tf.clip_by_value(images, 0.0, 1.0)


class TwoViewAugment:
    """Draws and applies two independent augmentations of each image.

    Args:
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio (width / height), log-uniform.
        flip: probability of a horizontal flip.
        brightness: additive brightness delta drawn from [-brightness, brightness].
        saturation: range of the saturation factor (1 = unchanged, 0 = gray).
        hue: hue shift drawn from [-hue, hue], in turns of the colour wheel.
        grayscale: probability of converting a view to grayscale.
        blur: probability of a Gaussian blur.
        blur_sigma: range of the blur sigma, in output pixels (capped at 2).
        solarize: probability of solarizing (inverting values >= 0.5).
        mean: per-channel mean used by the normalisation.
        std: per-channel standard deviation used by the normalisation.
        jit_compile: compile the crop and the colour transform with XLA (each
            separately: about 3x faster on CPU than TF's kernels, whose
            per-channel broadcasts are slow; fused together they run slower).
    """

    def __init__(
        self,
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip: float = 0.5,
        brightness: float = 0.2,
        saturation: tuple[float, float] = (0.9, 1.0),
        hue: float = 0.05,
        grayscale: float = 0.0,
        blur: float = 0.0,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        solarize: float = 0.0,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        jit_compile: bool = True,
    ):
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.flip = flip
        self.brightness = brightness
        self.saturation = tuple(saturation)
        self.hue = hue
        self.grayscale = grayscale
        self.blur = blur
        self.blur_sigma = tuple(blur_sigma)
        self.solarize = solarize
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.jit_compile = jit_compile

    def draw(self, seeds: tf.Tensor) -> tf.Tensor:
        """Per-image seeds int [..., 2] -> uniforms [..., 2, D] for both views."""
        return tf.reshape(
            hash_uniform(seeds, 2 * _NUM_DRAWS),
            tf.concat([tf.shape(seeds)[:-1], [2, _NUM_DRAWS]], 0),
        )

    def params(self, draws: tf.Tensor, height, width) -> dict[str, tf.Tensor]:
        """Uniforms [..., D] -> view parameters with leading shape [...].

        ``boxes [..., 4]`` normalised (y1, x1, y2, x2) for ``crop_and_resize``,
        x1 > x2 when flipped; ``brightness``, ``saturation``, ``hue`` (turns),
        ``blur_sigma`` (0 = no blur) float32; ``grayscale``, ``solarize`` bool.
        """
        h = tf.cast(height, tf.float32)
        w = tf.cast(width, tf.float32)
        u_area = draws[..., :_ATTEMPTS]
        u_ratio = draws[..., _ATTEMPTS : 2 * _ATTEMPTS]
        u_top = draws[..., 2 * _ATTEMPTS : 3 * _ATTEMPTS]
        u_left = draws[..., 3 * _ATTEMPTS : 4 * _ATTEMPTS]
        u = draws[..., 4 * _ATTEMPTS :]  # [..., 8] scalar draws
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * u_area)
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = tf.exp(log_lo + (log_hi - log_lo) * u_ratio)
        crop_w = tf.round(tf.sqrt(area * aspect))  # [..., attempts]
        crop_h = tf.round(tf.sqrt(area / aspect))
        ok = (crop_w > 0) & (crop_h > 0) & (crop_w <= w) & (crop_h <= h)
        first = tf.argmax(tf.cast(ok, tf.int32), axis=-1)[..., None]  # first valid attempt

        def pick(values):
            return tf.gather(values, first, axis=-1, batch_dims=len(values.shape) - 1)[..., 0]

        # torchvision's fallback: centre crop, aspect clamped into ``ratio``.
        r_lo, r_hi = self.ratio
        fb_w = tf.where(w / h > r_hi, tf.round(h * r_hi), w)
        fb_h = tf.where(w / h < r_lo, tf.round(w / r_lo), h)
        found = tf.reduce_any(ok, axis=-1)
        cw = tf.where(found, pick(crop_w), fb_w)
        ch = tf.where(found, pick(crop_h), fb_h)
        top = tf.where(found, tf.floor(pick(u_top) * (h - ch + 1)), tf.round((h - ch) / 2))
        left = tf.where(found, tf.floor(pick(u_left) * (w - cw + 1)), tf.round((w - cw) / 2))
        top = tf.minimum(top, h - ch)
        left = tf.minimum(left, w - cw)
        # crop_and_resize maps normalised y to y * (H - 1): boxes span pixel centres.
        y1, y2 = top / tf.maximum(h - 1, 1), (top + ch - 1) / tf.maximum(h - 1, 1)
        x1, x2 = left / tf.maximum(w - 1, 1), (left + cw - 1) / tf.maximum(w - 1, 1)
        flip = u[..., 0] < self.flip
        boxes = tf.stack([y1, tf.where(flip, x2, x1), y2, tf.where(flip, x1, x2)], axis=-1)
        s_lo, s_hi = self.saturation
        b_lo, b_hi = self.blur_sigma
        return {
            "boxes": boxes,
            "brightness": self.brightness * (2.0 * u[..., 1] - 1.0),
            "saturation": s_lo + (s_hi - s_lo) * u[..., 2],
            "hue": self.hue * (2.0 * u[..., 3] - 1.0),
            "grayscale": u[..., 4] < self.grayscale,
            "blur_sigma": tf.where(u[..., 5] < self.blur, b_lo + (b_hi - b_lo) * u[..., 6], 0.0),
            "solarize": u[..., 7] < self.solarize,
        }

    def colour_matrix(self, params: dict[str, tf.Tensor]) -> tf.Tensor:
        """Per-view colour transform [..., 3, 3] for row vectors (rgb @ M).

        Saturation then hue then (optionally) grayscale; every factor keeps gray
        gray, so brightness stays a plain offset.
        """
        f = params["saturation"][..., None, None]
        eye = tf.eye(3)
        saturation = f * eye + (1.0 - f) * tf.constant(_LUMA[:, None])  # blend with the luma
        angle = -2.0 * math.pi * params["hue"]  # YIQ rotation matching HSV's direction
        c, s = tf.cos(angle), tf.sin(angle)
        one, zero = tf.ones_like(c), tf.zeros_like(c)
        rotation = tf.stack(
            [
                tf.stack([one, zero, zero], -1),
                tf.stack([zero, c, s], -1),
                tf.stack([zero, -s, c], -1),
            ],
            axis=-2,
        )  # [..., 3, 3]
        hue = tf.constant(_RGB_TO_YIQ) @ rotation @ tf.constant(_YIQ_TO_RGB)
        matrix = saturation @ hue
        gray = tf.broadcast_to(tf.constant(_LUMA[:, None]), [3, 3])
        return tf.where(params["grayscale"][..., None, None], matrix @ gray, matrix)

    def apply(self, images: tf.Tensor, draws: tf.Tensor, crop_size: int) -> tf.Tensor:
        """images uint8 [B, H, W, C] (C = 1 or 3) + ``draw``s [B, 2, D] -> [2B, S, S, 3].

        Rows 0..B-1 are view 0, rows B..2B-1 view 1 of the same images.
        """
        if images.shape[-1] == 1:
            images = tf.image.grayscale_to_rgb(images)
        shape = tf.shape(images)
        b = shape[0]
        draws = tf.concat([draws[:, 0], draws[:, 1]], axis=0)  # [2B, D] view-major
        p = self.params(draws, shape[1], shape[2])
        crop, colour = (_crop_xla, _colour_xla) if self.jit_compile else (crop_and_resize, _colour)
        x = crop(images, p["boxes"], tf.tile(tf.range(b), [2]), crop_size)  # [2B, S, S, 3]
        matrix = self.colour_matrix(p) / 255.0  # [2B, 3, 3]
        if self.blur == 0 and self.solarize == 0:
            return colour(x, matrix, p["brightness"], self.mean, self.std)
        x = colour(x, matrix, p["brightness"], (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # [0, 1]
        if self.blur > 0:
            x = _gaussian_blur(x, p["blur_sigma"])
        if self.solarize > 0:
            x = tf.where(p["solarize"][:, None, None, None] & (x >= 0.5), 1.0 - x, x)
        return normalize(x, self.mean, self.std)

    def __call__(self, images: tf.Tensor, seeds: tf.Tensor, crop_size: int) -> tf.Tensor:
        """uint8 [B, H, W, C] and per-image seeds int [B, 2] -> float32 [2B, S, S, 3]."""
        return self.apply(images, self.draw(seeds), crop_size)


def crop_and_resize(images: tf.Tensor, boxes: tf.Tensor, box_indices: tf.Tensor, size: int):
    """``tf.image.crop_and_resize`` (bilinear, boxes inside the image) with gathers.

    Separable: gather two rows per output row and lerp, then two columns. Unlike
    the TF kernel it compiles with XLA. images [B, H, W, C], boxes [N, 4]
    normalised (y1, x1, y2, x2), box_indices [N] -> float32 [N, S, S, C].
    """
    shape = tf.shape(images)
    steps = tf.range(size, dtype=tf.float32) / max(size - 1, 1)  # [S]

    def coords(lo, hi, extent):
        pos = (lo[:, None] + (hi - lo)[:, None] * steps) * tf.cast(extent - 1, tf.float32)
        first = tf.clip_by_value(tf.cast(tf.floor(pos), tf.int32), 0, extent - 1)  # [N, S]
        second = tf.minimum(first + 1, extent - 1)
        return first, second, pos - tf.cast(first, tf.float32)

    y0, y1, wy = coords(boxes[:, 0], boxes[:, 2], shape[1])
    x0, x1, wx = coords(boxes[:, 1], boxes[:, 3], shape[2])
    image = tf.broadcast_to(box_indices[:, None], tf.shape(y0))  # [N, S]
    top = tf.cast(tf.gather_nd(images, tf.stack([image, y0], -1)), tf.float32)  # [N, S, W, C]
    bottom = tf.cast(tf.gather_nd(images, tf.stack([image, y1], -1)), tf.float32)
    rows = top + (bottom - top) * wy[:, :, None, None]
    left = tf.gather(rows, x0, axis=2, batch_dims=1)  # [N, S, S, C]
    right = tf.gather(rows, x1, axis=2, batch_dims=1)
    return left + (right - left) * wx[:, None, :, None]


def _colour(x, matrix, brightness, mean, std) -> tf.Tensor:
    """x [N, S, S, 3] in [0, 255] -> normalise(clip(x @ matrix + brightness, 0, 1))."""
    x = tf.einsum("nhwc,ncd->nhwd", x, matrix)
    x = tf.clip_by_value(x + brightness[:, None, None, None], 0.0, 1.0)
    return normalize(x, mean, std)


_crop_xla = tf.function(crop_and_resize, jit_compile=True, reduce_retracing=True)
_colour_xla = tf.function(_colour, jit_compile=True, reduce_retracing=True)


def _gaussian_blur(x: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Separable Gaussian blur with one sigma per image. x [N, S, S, C], sigma [N]."""
    n, c = tf.shape(x)[0], x.shape[-1]
    taps = tf.range(-_MAX_BLUR_RADIUS, _MAX_BLUR_RADIUS + 1, dtype=tf.float32)  # [K]
    sig = tf.clip_by_value(sigma, 1e-3, _MAX_BLUR_RADIUS / 3)[:, None]  # [N, 1]
    kernel = tf.exp(-0.5 * tf.square(taps / sig))  # [N, K]
    kernel = tf.where(sigma[:, None] > 0, kernel, tf.cast(tf.equal(taps, 0.0), tf.float32))
    kernel /= tf.reduce_sum(kernel, axis=1, keepdims=True)
    kernel = tf.repeat(kernel, c, axis=0)  # [N*C, K] one kernel per image channel
    # Images become channels of a single image so each gets its own kernel.
    stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, tf.shape(x)[1], tf.shape(x)[2], n * c])
    pad = _MAX_BLUR_RADIUS
    for axis in (1, 2):
        paddings = [
            [0, 0],
            [pad, pad] if axis == 1 else [0, 0],
            [pad, pad] if axis == 2 else [0, 0],
            [0, 0],
        ]
        padded = tf.pad(stacked, paddings, mode="REFLECT")
        shape = [-1, 1] if axis == 1 else [1, -1]
        filters = tf.reshape(tf.transpose(kernel), shape + [n * c, 1])  # [K,1,NC,1] or [1,K,NC,1]
        stacked = tf.nn.depthwise_conv2d(padded, filters, [1, 1, 1, 1], "VALID")
    return tf.transpose(tf.reshape(stacked, [tf.shape(x)[1], tf.shape(x)[2], n, c]), [2, 0, 1, 3])
