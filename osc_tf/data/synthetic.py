"""Procedural CLEVR-like scenes: the embedded default dataset (no download needed).

A fixed pinhole camera looks down at a grey floor holding 3-10 objects drawn from
CLEVR's vocabulary (2 sizes, 8 colours, 2 materials, 3 shapes). Each object is ray
cast exactly (sphere, rotated cube, upright cylinder) and shaded with a Lambert term;
metal adds a Blinn-Phong highlight and an environment reflection. Objects are drawn
far to near (painter's order) into a label map, so every mask is the exact visible
region of its object in the image. Soft shadows darken the floor (they belong to the
background entity, as in CLEVR).

The output dict follows the layout of DeepMind's ``clevr_with_masks`` records
(E = 11 entities, entity 0 = background, absent entities all zero):

    image         uint8   [H, W, 3]
    mask          uint8   [E, H, W, 1]   0 or 255, disjoint, covering the image
    visibility    float32 [E]            1 for the background and each object
    x, y, z       float32 [E]            world position of the object centre
    rotation      float32 [E]            degrees in [0, 360)
    pixel_coords  float32 [E, 3]         (column, row, depth) of the centre
    size, material, shape, color  uint8 [E]   1-based codes into SIZES, MATERIALS,
                                              SHAPES, COLORS; 0 = background/absent

The codes follow the order of CLEVR's ``properties.json``; DeepMind does not document
the integer codes of its ``clevr_with_masks`` files, so do not assume they coincide.
A scene is a pure function of ``(seed, index, config)``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator

import numpy as np

NUM_ENTITIES = 11
SIZES = ("large", "small")
MATERIALS = ("rubber", "metal")
SHAPES = ("cube", "sphere", "cylinder")
COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
# CLEVR's object colours (properties.json), as RGB in [0, 1].
COLOR_RGB = (
    np.array(
        [
            [87, 87, 87],
            [173, 35, 35],
            [42, 75, 215],
            [29, 105, 20],
            [129, 74, 25],
            [129, 38, 192],
            [41, 208, 208],
            [255, 238, 51],
        ],
        np.float32,
    )
    / 255.0
)
RADIUS = {"large": 0.7, "small": 0.35}  # CLEVR's object radii in world units
_ARENA = 3.0  # object centres lie in [-3, 3]^2 on the floor, as in CLEVR
_MARGIN = 0.25  # minimum free gap between two objects' footprints


@dataclasses.dataclass(frozen=True)
class SceneConfig:
    """What a scene looks like.

    Args:
        height: image height H in pixels.
        width: image width W (default keeps CLEVR's 3:4 aspect).
        min_objects: fewest objects per scene.
        max_objects: most objects per scene (at most NUM_ENTITIES - 1 = 10).
        min_visible_fraction: an object must own at least this fraction of the
            image's pixels, otherwise the scene is re-drawn (CLEVR rejects scenes
            with barely visible objects the same way).
    """

    height: int = 120
    width: int = 160
    min_objects: int = 3
    max_objects: int = 10
    min_visible_fraction: float = 0.001

    def __post_init__(self):
        if not 1 <= self.min_objects <= self.max_objects <= NUM_ENTITIES - 1:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= {NUM_ENTITIES - 1}, got "
                f"{self.min_objects}, {self.max_objects}"
            )
        if self.height < 8 or self.width < 8:
            raise ValueError(f"image too small: {self.height}x{self.width}")


@dataclasses.dataclass(frozen=True)
class _View:
    """Camera and per-pixel quantities that do not change between scenes."""

    origin: np.ndarray  # [3] camera centre (world)
    axes: np.ndarray  # [3, 3] rows: right, up, forward (world -> camera)
    focal: float  # pixels
    rays: np.ndarray  # [H, W, 3] unit ray directions (world)
    floor_xy: np.ndarray  # [H, W, 2] where each ray meets the floor
    floor_shade: np.ndarray  # [H, W] floor brightness before shadows

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points [N, 3] -> (column, row, depth) [N, 3] in pixels."""
        cam = (points - self.origin) @ self.axes.T  # [N, 3]
        h, w = self.rays.shape[:2]
        col = w / 2 + self.focal * cam[:, 0] / cam[:, 2]
        row = h / 2 - self.focal * cam[:, 1] / cam[:, 2]
        out = np.empty_like(cam)
        out[:, 0], out[:, 1], out[:, 2] = col, row, cam[:, 2]
        return out


@functools.lru_cache(maxsize=8)
def _view(height: int, width: int) -> _View:
    origin = np.array([0.0, -10.5, 8.0])
    forward = np.array([0.0, 0.9, 0.0]) - origin
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    axes = np.stack([right, up, forward])  # [3, 3]
    focal = 1.55 * width
    cols = np.arange(width) + 0.5 - width / 2
    rows = height / 2 - (np.arange(height) + 0.5)
    cam = np.stack(
        np.broadcast_arrays(cols[None, :] / focal, rows[:, None] / focal, 1.0), axis=-1
    )  # [H, W, 3] camera frame
    rays = cam @ axes  # [H, W, 3] world frame
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    t = -origin[2] / np.minimum(rays[..., 2], -1e-6)  # [H, W] distance to the floor
    floor_xy = origin[:2] + t[..., None] * rays[..., :2]  # [H, W, 2]
    dist = np.clip((t - 8.0) / 10.0, 0.0, 1.0)
    floor_shade = 0.66 - 0.16 * dist - 0.03 * np.abs(floor_xy[..., 0]) / _ARENA
    return _View(origin, axes, focal, rays, floor_xy, floor_shade.astype(np.float32))


@dataclasses.dataclass
class _Object:
    size: int  # 0-based index into SIZES
    material: int
    shape: int
    color: int
    x: float
    y: float
    rotation: float  # degrees

    @property
    def radius(self) -> float:
        return RADIUS[SIZES[self.size]]

    @property
    def center(self) -> np.ndarray:
        """Centre of the object (world); it rests on the floor."""
        r = self.radius
        z = r / np.sqrt(2.0) if SHAPES[self.shape] == "cube" else r
        return np.array([self.x, self.y, z])


def _intersect(obj: _Object, origin: np.ndarray, dirs: np.ndarray):
    """Ray cast one object. dirs [P, 3] -> (hit [P] bool, normals [P, 3])."""
    r = obj.radius
    shape = SHAPES[obj.shape]
    if shape == "sphere":
        oc = origin - obj.center  # [3]
        b = dirs @ oc  # [P]
        disc = b * b - (oc @ oc - r * r)
        hit = disc >= 0.0
        t = -b - np.sqrt(np.maximum(disc, 0.0))
        normals = (origin + t[:, None] * dirs - obj.center) / r  # [P, 3]
        return hit & (t > 0), normals
    if shape == "cube":
        a = r / np.sqrt(2.0)  # half side; CLEVR scales cubes so they fit the radius
        theta = np.deg2rad(obj.rotation)
        c, s = np.cos(theta), np.sin(theta)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # local -> world
        o_l = (origin - obj.center) @ rot  # [3] local frame
        d_l = dirs @ rot  # [P, 3]
        d_l = np.where(np.abs(d_l) < 1e-9, 1e-9, d_l)
        t1 = (-a - o_l) / d_l  # [P, 3]
        t2 = (a - o_l) / d_l
        t_near = np.minimum(t1, t2)
        t_far = np.maximum(t1, t2)
        enter = t_near.max(axis=1)
        hit = (t_far.min(axis=1) >= enter) & (enter > 0)
        axis = t_near.argmax(axis=1)  # [P] face entered through
        n_l = np.zeros_like(d_l)
        n_l[np.arange(len(axis)), axis] = -np.sign(d_l[np.arange(len(axis)), axis])
        return hit, n_l @ rot.T
    # Upright cylinder of radius r and height 2r standing on the floor.
    height = 2.0 * r
    oc = origin[:2] - obj.center[:2]  # [2]
    dxy = dirs[:, :2]
    qa = np.maximum((dxy * dxy).sum(axis=1), 1e-12)
    qb = 2.0 * dxy @ oc
    disc = qb * qb - 4.0 * qa * (oc @ oc - r * r)
    t_side = (-qb - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * qa)
    z_side = origin[2] + t_side * dirs[:, 2]
    side = (disc >= 0.0) & (z_side >= 0.0) & (z_side <= height) & (t_side > 0)
    t_top = (height - origin[2]) / np.minimum(dirs[:, 2], -1e-9)
    p_top = oc + t_top[:, None] * dxy  # [P, 2] relative to the axis
    top = ((p_top * p_top).sum(axis=1) <= r * r) & (t_top > 0)
    use_top = top & (~side | (t_top <= t_side))
    p_side = oc + t_side[:, None] * dxy
    normals = np.concatenate([p_side / r, np.zeros_like(t_side)[:, None]], axis=1)
    normals[use_top] = (0.0, 0.0, 1.0)
    return side | top, normals


def _unit_interval(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] (two ufunc calls; np.clip's Python wrapper costs more here)."""
    return np.minimum(np.maximum(x, 0.0), 1.0)


def _shade(obj: _Object, normals, dirs, light) -> np.ndarray:
    """Colour [P, 3] in [0, 1] for surface normals [P, 3] seen along dirs [P, 3]."""
    base = COLOR_RGB[obj.color]
    n_dot_l = _unit_interval(normals @ light)[:, None]
    half = light - dirs
    half /= np.sqrt((half * half).sum(axis=1, keepdims=True))
    n_dot_h = _unit_interval((normals * half).sum(axis=1))[:, None]
    if MATERIALS[obj.material] == "rubber":
        return base * (0.28 + 0.72 * n_dot_l) + 0.05 * n_dot_h**8
    reflect = dirs - 2.0 * (normals * dirs).sum(axis=1, keepdims=True) * normals
    env = 0.5 + 0.5 * reflect[:, 2:3]  # brighter where the reflection looks up
    return base * (0.18 + 0.5 * n_dot_l + 0.3 * env) + 0.95 * n_dot_h**60


def _place_objects(rng: np.random.Generator, config: SceneConfig) -> list[_Object]:
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    objects: list[_Object] = []
    while len(objects) < n:
        for _ in range(100):
            obj = _Object(
                size=int(rng.integers(len(SIZES))),
                material=int(rng.integers(len(MATERIALS))),
                shape=int(rng.integers(len(SHAPES))),
                color=int(rng.integers(len(COLORS))),
                x=float(rng.uniform(-_ARENA, _ARENA)),
                y=float(rng.uniform(-_ARENA, _ARENA)),
                rotation=float(rng.uniform(0.0, 360.0)),
            )
            if all(
                np.hypot(obj.x - o.x, obj.y - o.y) >= obj.radius + o.radius + _MARGIN
                for o in objects
            ):
                objects.append(obj)
                break
        else:  # the floor is too crowded: start over
            objects = []
    return objects


def _window(points: np.ndarray, view: _View) -> tuple[int, int, int, int]:
    """Pixel rows/cols [r0, r1) x [c0, c1) covering the world points [N, 3]."""
    proj = view.project(points)
    h, w = view.rays.shape[:2]
    lo = np.floor(proj.min(axis=0)).tolist()
    hi = (np.ceil(proj.max(axis=0)) + 1).tolist()
    c0, c1 = min(max(int(lo[0]), 0), w), min(max(int(hi[0]), 0), w)
    r0, r1 = min(max(int(lo[1]), 0), h), min(max(int(hi[1]), 0), h)
    return r0, r1, c0, c1


_UNIT_BOX = np.array([[dx, dy, z] for dx in (-1, 1) for dy in (-1, 1) for z in (0, 1)], float)


def _box(x: float, y: float, r: float, top: float) -> np.ndarray:
    """Corners [8, 3] of the box [x-r, x+r] x [y-r, y+r] x [0, top]."""
    return np.array([x, y, 0.0]) + _UNIT_BOX * np.array([r, r, top])


def _render(objects: list[_Object], rng: np.random.Generator, view: _View):
    """-> image float [H, W, 3] in [0, 1], label map int [H, W] (0 = background)."""
    light = np.array([rng.uniform(-0.6, -0.2), rng.uniform(-0.7, -0.3), 1.0])
    light /= np.linalg.norm(light)
    floor = view.floor_shade * rng.uniform(0.9, 1.1)  # [H, W]
    # Soft shadows: a capsule from the footprint away from the light.
    shadow = np.ones_like(floor)
    offset = -light[:2] / light[2]
    for obj in objects:
        start = np.array([obj.x, obj.y])
        seg = offset * obj.radius * 1.2  # [2] capsule axis on the floor
        reach = obj.radius * 1.1
        corners = np.concatenate([_box(*start, reach, 0.0), _box(*(start + seg), reach, 0.0)])
        r0, r1, c0, c1 = _window(corners, view)
        rel = view.floor_xy[r0:r1, c0:c1] - start  # [h, w, 2]
        u = _unit_interval((rel @ seg) / (seg @ seg))
        dist = np.sqrt(((rel - u[..., None] * seg) ** 2).sum(axis=-1))
        dark = _unit_interval((obj.radius * 1.05 - dist) / (0.4 * obj.radius))
        shadow[r0:r1, c0:c1] *= 1.0 - 0.4 * dark
    image = np.repeat((floor * shadow)[..., None], 3, axis=-1)  # [H, W, 3]
    labels = np.zeros(floor.shape, np.int32)
    depth = [np.linalg.norm(obj.center - view.origin) for obj in objects]
    for k in np.argsort(depth)[::-1]:  # far to near: painter's order
        obj = objects[k]
        r0, r1, c0, c1 = _window(_box(obj.x, obj.y, obj.radius, 2 * obj.radius), view)
        if r0 >= r1 or c0 >= c1:
            continue
        dirs = view.rays[r0:r1, c0:c1].reshape(-1, 3)  # [P, 3]
        hit, normals = _intersect(obj, view.origin, dirs)
        if not hit.any():
            continue
        window = image[r0:r1, c0:c1].reshape(-1, 3)
        window[hit] = _shade(obj, normals[hit], dirs[hit], light)
        image[r0:r1, c0:c1] = window.reshape(r1 - r0, c1 - c0, 3)
        lab = labels[r0:r1, c0:c1].reshape(-1)
        lab[hit] = k + 1
        labels[r0:r1, c0:c1] = lab.reshape(r1 - r0, c1 - c0)
    return np.clip(image, 0.0, 1.0), labels


def scene(index: int, seed: int = 0, config: SceneConfig = SceneConfig()) -> dict:
    """The scene number ``index`` of the stream ``seed`` (see the module docstring)."""
    rng = np.random.default_rng([seed, index])
    view = _view(config.height, config.width)
    min_pixels = max(1, round(config.min_visible_fraction * config.height * config.width))
    while True:
        objects = _place_objects(rng, config)
        image, labels = _render(objects, rng, view)
        counts = np.bincount(labels.ravel(), minlength=NUM_ENTITIES)
        if counts[1 : len(objects) + 1].min() >= min_pixels:
            break
    e = NUM_ENTITIES
    entities = np.arange(e, dtype=np.int32)[:, None, None]
    out = {
        "image": np.round(image * 255.0).astype(np.uint8),
        "mask": ((labels[None] == entities).astype(np.uint8) * 255)[..., None],
        "visibility": np.zeros(e, np.float32),
        "x": np.zeros(e, np.float32),
        "y": np.zeros(e, np.float32),
        "z": np.zeros(e, np.float32),
        "rotation": np.zeros(e, np.float32),
        "pixel_coords": np.zeros((e, 3), np.float32),
        "size": np.zeros(e, np.uint8),
        "material": np.zeros(e, np.uint8),
        "shape": np.zeros(e, np.uint8),
        "color": np.zeros(e, np.uint8),
    }
    out["visibility"][: len(objects) + 1] = 1.0
    for i, obj in enumerate(objects, start=1):
        center = obj.center
        out["x"][i], out["y"][i], out["z"][i] = center
        out["rotation"][i] = obj.rotation
        out["pixel_coords"][i] = view.project(center[None])[0]
        out["size"][i] = obj.size + 1
        out["material"][i] = obj.material + 1
        out["shape"][i] = obj.shape + 1
        out["color"][i] = obj.color + 1
    return out


def scenes(
    num: int, seed: int = 0, start: int = 0, config: SceneConfig = SceneConfig()
) -> Iterator[dict]:
    """Scenes ``start, ..., start + num - 1`` of the stream ``seed``."""
    for index in range(start, start + num):
        yield scene(index, seed, config)
