"""Drawing of synthetic scenes: textured ground, shadows, class-specific object shapes, plumes, sensor noise.

Everything is drawn with PIL's C polygon rasteriser onto one RGB canvas; textures and noise are numpy
fields (low-resolution noise upsampled by PIL, so a 4,096 px scene renders in a few seconds). Shapes are
given in a unit local frame (x along the object's heading in [-0.5, 0.5], y across it in [-0.5, 0.5]) and
every shape touches the four sides of that square, so the annotated oriented box (length × width, heading)
is the tight box around what is drawn in the object's own frame — and, for every shape but the airplanes,
its minimum-area rectangle (an airplane's is tilted by its wings; like DOTA and STAR we keep the
fuselage-aligned box, which is what detectors should learn).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# ---------------------------------------------------------------------------------------------- shapes
_T = np.linspace(0, 2 * np.pi, 33)[:-1]
CIRCLE = np.stack([0.5 * np.cos(_T), 0.5 * np.sin(_T)], 1)
RECT = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
HULL = np.array([[-0.5, -0.5], [0.28, -0.5], [0.5, 0.0], [0.28, 0.5], [-0.5, 0.5]])  # pointed bow
PLANE = np.array([  # fuselage along x, wings swept back, tailplane; spans the unit square
    [0.5, 0.0], [0.42, -0.05], [0.12, -0.05], [-0.1, -0.5], [-0.18, -0.5], [-0.06, -0.05], [-0.34, -0.05],
    [-0.44, -0.2], [-0.5, -0.2], [-0.46, -0.03], [-0.5, 0.0],
    [-0.46, 0.03], [-0.5, 0.2], [-0.44, 0.2], [-0.34, 0.05], [-0.06, 0.05], [-0.18, 0.5], [-0.1, 0.5],
    [0.12, 0.05], [0.42, 0.05]])
PLANE_STRAIGHT = np.array([  # high straight wing (regional turboprop), tailplane; spans the unit square
    [0.5, 0.0], [0.44, -0.05], [0.1, -0.05], [0.1, -0.5], [-0.02, -0.5], [-0.02, -0.05], [-0.38, -0.05],
    [-0.42, -0.16], [-0.5, -0.16], [-0.48, 0.0],
    [-0.5, 0.16], [-0.42, 0.16], [-0.38, 0.05], [-0.02, 0.05], [-0.02, 0.5], [0.1, 0.5], [0.1, 0.05],
    [0.44, 0.05]])
CAR = np.array([  # car body seen from above: rounded (chamfered) corners, a touch narrower at the bonnet
    [0.5, -0.36], [0.44, -0.5], [-0.44, -0.5], [-0.5, -0.4], [-0.5, 0.4], [-0.44, 0.5], [0.44, 0.5], [0.5, 0.36]])
OVAL = np.concatenate([  # stadium-shaped running track (two half circles joined)
    np.stack([0.25 + 0.25 * np.cos(np.linspace(-np.pi / 2, np.pi / 2, 13)), 0.5 * np.sin(np.linspace(-np.pi / 2, np.pi / 2, 13))], 1),
    np.stack([-0.25 + 0.25 * np.cos(np.linspace(np.pi / 2, 1.5 * np.pi, 13)), 0.5 * np.sin(np.linspace(np.pi / 2, 1.5 * np.pi, 13))], 1)])
_Q = np.linspace(0, np.pi / 2, 13)
FAN = np.concatenate([[[-0.5, -0.5]], np.stack([-0.5 + np.cos(_Q), -0.5 + np.sin(_Q)], 1)])  # quarter disc (ball field)
ARC = np.concatenate([  # curved (arch) dam wall, convex upstream
    np.stack([np.linspace(-0.5, 0.5, 12), -0.5 + 0.8 * (1 - (np.linspace(-1, 1, 12)) ** 2)], 1),
    np.stack([np.linspace(0.5, -0.5, 12), -0.3 + 0.8 * (1 - (np.linspace(1, -1, 12)) ** 2)], 1)])
ARC[:, 1] -= (ARC[:, 1].max() + ARC[:, 1].min()) / 2
ARC[:, 1] *= 1.0 / (ARC[:, 1].max() - ARC[:, 1].min())

_P = np.linspace(0, 1, 14)
PLUME = np.concatenate([  # smoke / vapour plume, narrow at the source (x = -0.5), widening downwind
    np.stack([-0.5 + _P, -0.5 * np.sqrt(_P) * (1 - 0.6 * _P ** 6)], 1),
    np.stack([-0.5 + _P[::-1], 0.5 * np.sqrt(_P[::-1]) * (1 - 0.6 * _P[::-1] ** 6)], 1)])
PLUME[:, 1] /= 2 * PLUME[:, 1].max()

SHAPES = {"plume": PLUME, "rect": RECT, "circle": CIRCLE, "hull": HULL, "plane": PLANE, "oval": OVAL, "fan": FAN, "arc": ARC,
          "plane_straight": PLANE_STRAIGHT, "car": CAR}


def place(shape: np.ndarray, cx: float, cy: float, length: float, width: float, heading: float) -> np.ndarray:
    """Unit shape → (K,2) pixel polygon scaled to length × width, rotated to ``heading``, centred at cx, cy."""
    c, s = math.cos(heading), math.sin(heading)
    x, y = shape[:, 0] * length, shape[:, 1] * width
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], 1)


def _poly(draw: ImageDraw.ImageDraw, pts: np.ndarray, fill) -> None:
    draw.polygon([(float(a), float(b)) for a, b in pts], fill=fill)


# --------------------------------------------------------------------------------------------- textures
def noise_field(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Smooth value noise in about [-1, 1] with features of ``cell`` pixels (upsampled by PIL, fast)."""
    gh, gw = max(2, h // cell + 2), max(2, w // cell + 2)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    im = Image.fromarray(small, mode="F").resize((gw * cell, gh * cell), Image.BICUBIC)
    return np.asarray(im, dtype=np.float32)[:h, :w]


def _up(field: np.ndarray, w: int, h: int, mode=Image.BILINEAR) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(field, dtype=np.float32), mode="F").resize((w, h), mode), np.float32)


LAND = {  # base colour and texture strength
    "vegetation": ((78, 102, 58), 22.0),
    "soil": ((150, 128, 98), 16.0),
    "urban": ((120, 118, 112), 12.0),
    "dry": ((168, 156, 120), 14.0),
}
WATER = (38, 66, 82)


def ground(rng: np.random.Generator, h: int, w: int, kinds: list[str], gsd: float) -> Image.Image:
    """Mixed land cover: patches of several surfaces with multi-scale texture. Coarse structure is computed
    at 1/4 resolution and upsampled (soft patch edges); fine grain is a full-resolution noise layer."""
    q = 4
    hq, wq = -(-h // q), -(-w // q)
    cell = max(4, int(160 / gsd / q))
    weights = np.stack([noise_field(rng, hq, wq, cell) for _ in kinds], 0)
    idx = weights.argmax(0)
    pal = np.array([LAND[k][0] for k in kinds], np.float32)
    st = np.array([LAND[k][1] for k in kinds], np.float32)
    tex = noise_field(rng, hq, wq, max(2, int(12 / gsd / q)))
    small = pal[idx] + (st[idx] * tex * 0.7)[..., None] * np.array([1.0, 1.05, 0.9], np.float32)
    img = Image.fromarray(np.clip(small, 0, 255).astype(np.uint8), "RGB").resize((wq * q, hq * q), Image.BILINEAR).crop((0, 0, w, h))
    grain = (noise_field(rng, h, w, max(2, int(3 / gsd))) * 9 + 128).clip(0, 255).astype(np.uint8)
    return _add_grain(img, grain)


def _add_grain(img: Image.Image, grain: np.ndarray) -> Image.Image:
    """img + (grain - 128) on every band, in C (ImageChops)."""
    from PIL import ImageChops

    g = Image.fromarray(grain, "L")
    g3 = Image.merge("RGB", (g, g, g))
    return ImageChops.add(img, g3, scale=1.0, offset=-128)


PSF = ImageFilter.Kernel((3, 3), [1, 2, 1, 2, 6, 2, 1, 2, 1], scale=18)


# ------------------------------------------------------------------------------------------- rendering
def render(rng: np.random.Generator, width: int, height: int, gsd: float, land: list[str], ground_items: list,
           objects: list, plumes: list, sun: tuple[float, float], shade: int = 90) -> np.ndarray:
    """Draw a scene. ``ground_items``: (polygon_px, rgb, kind) where kind 'water' gets wave texture.
    ``objects``: dicts with poly (list of (polygon_px, rgb)), shadow (list of polygons) or None, z.
    ``plumes``: (polygon_px, rgb, alpha). ``shade``: shadows multiply what they cover by ``shade / 255``.
    Returns HxWx3 uint8. Whole-image steps run in PIL's C code."""
    from PIL import ImageChops

    img = ground(rng, height, width, land, gsd)
    water = Image.new("L", (width, height), 0)
    wd = ImageDraw.Draw(water)
    has_water = False
    for pts, _, kind in ground_items:
        if kind == "water":
            _poly(wd, pts, 255)
            has_water = True
    if has_water:
        q = 4
        hq, wq = -(-height // q), -(-width // q)
        waves = noise_field(rng, hq, wq, max(2, int(80 / gsd / q))) * 8
        wsmall = np.asarray(WATER, np.float32) + waves[..., None] * np.array([0.6, 0.9, 1.0], np.float32)
        wimg = Image.fromarray(np.clip(wsmall, 0, 255).astype(np.uint8), "RGB").resize((wq * q, hq * q), Image.BILINEAR)
        wimg = _add_grain(wimg.crop((0, 0, width, height)),
                          (noise_field(rng, height, width, max(2, int(4 / gsd))) * 4 + 128).clip(0, 255).astype(np.uint8))
        img = Image.composite(wimg, img, water)
    draw = ImageDraw.Draw(img)
    for pts, col, kind in ground_items:
        if kind != "water":
            _poly(draw, pts, tuple(int(c) for c in col))
    order = sorted(range(len(objects)), key=lambda i: objects[i]["z"])
    for i in order:
        if objects[i]["z"] < 2:
            for pts, col in objects[i]["poly"]:
                _poly(draw, pts, col)
    # shadows of raised objects darken whatever lies below them (multiply by shade / 255, 0.35 by default)
    shadow = Image.new("L", (width, height), 255)
    sd = ImageDraw.Draw(shadow)
    for i in order:
        if objects[i]["z"] >= 2 and objects[i].get("shadow") is not None:
            for pts in objects[i]["shadow"]:
                _poly(sd, pts, int(shade))
    img = ImageChops.multiply(img, Image.merge("RGB", (shadow, shadow, shadow)))
    draw = ImageDraw.Draw(img)
    for i in order:
        if objects[i]["z"] >= 2:
            for pts, col in objects[i]["poly"]:
                _poly(draw, pts, col)
    # plumes: soft alpha blend of smoke / vapour, drawn and blurred at 1/4 resolution
    if plumes:
        q = 4
        hq, wq = -(-height // q), -(-width // q)
        pm = Image.new("L", (wq, hq), 0)
        pc = Image.new("L", (wq, hq), 0)
        pd, pcd = ImageDraw.Draw(pm), ImageDraw.Draw(pc)
        for pts, col, alpha in plumes:
            _poly(pd, pts / q, int(alpha * 255))
            _poly(pcd, pts / q, int(col[0]))
        pm = pm.filter(ImageFilter.GaussianBlur(radius=max(1.0, 1.5 / gsd / q)))
        puff = np.clip(noise_field(rng, hq, wq, max(2, int(8 / gsd / q))) * 0.35 + 0.75, 0, 1)
        pm = Image.fromarray((np.asarray(pm, np.float32) * puff).astype(np.uint8), "L")
        pm = pm.resize((wq * q, hq * q), Image.BILINEAR).crop((0, 0, width, height))
        pc = pc.resize((wq * q, hq * q), Image.NEAREST).crop((0, 0, width, height))
        img = Image.composite(Image.merge("RGB", (pc, pc, pc)), img, pm)
    # sensor: luminance noise and a slight blur (PSF)
    noise = rng.integers(128 - 6, 128 + 7, size=(height, width), dtype=np.uint8)
    img = _add_grain(img, noise).filter(PSF)
    return np.asarray(img)
