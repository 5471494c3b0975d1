"""Procedural scenes: the stimuli this project makes where NSD's photographs cannot be shipped.

Each image is a smooth random colour field (a 4 x 4 grid of colours, bilinearly interpolated), overlaid with
two to six opaque-ish shapes (ellipses, rectangles and thin bars at random positions, sizes, orientations and
colours, with one-pixel soft edges) and up to two Gabor patches (random frequency, orientation, phase, size and
colour), then scaled about its mean to a random contrast. Structure therefore varies at several scales: the
field's (a quarter of the image), the shapes' (from a few pixels to a third of the image) and the gratings'
(4 to 16 cycles per image). Every parameter is continuous, so no two images are the same.

All parameters are drawn up front from one generator seeded with ``seed``, so the images depend on
``(n, size, seed)`` only, not on how the rendering is split into batches.
"""

from __future__ import annotations

import numpy as np

from brainalign.errors import ConfigError

MAX_SHAPES = 6
MIN_SHAPES = 2
MAX_GABORS = 2
SHAPE_KINDS = ("ellipse", "rectangle", "bar")
FIELD_KNOTS = 4
# Images rendered at once: bounds memory to a few (batch, size, size) float32 arrays.
_BATCH = 256


def _interpolation(size: int, knots: int) -> np.ndarray:
    """(size, knots) weights of bilinear interpolation from ``knots`` evenly spaced values to pixel centres."""
    position = (np.arange(size) + 0.5) / size * (knots - 1)
    left = np.clip(np.floor(position).astype(int), 0, knots - 2)
    frac = position - left
    weights = np.zeros((size, knots))
    weights[np.arange(size), left] = 1 - frac
    weights[np.arange(size), left + 1] = frac
    return weights.astype(np.float32)


def _draw(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    k = (n, MAX_SHAPES)
    g = (n, MAX_GABORS)
    return {
        "field": rng.random((n, 3, FIELD_KNOTS, FIELD_KNOTS)),
        "n_shapes": rng.integers(MIN_SHAPES, MAX_SHAPES + 1, n),
        "kind": rng.integers(0, len(SHAPE_KINDS), k),
        "centre": rng.random(k + (2,)),
        "half": rng.uniform(0.04, 0.2, k),            # half length (ellipse, rectangle) in image widths
        "aspect": rng.uniform(0.3, 1.0, k),            # half width / half length
        "bar_half": rng.uniform(0.1, 0.3, k),          # a bar's half length
        "bar_width": rng.uniform(0.008, 0.025, k),     # a bar's half width
        "angle": rng.uniform(0, np.pi, k),
        "colour": rng.random(k + (3,)),
        "opacity": rng.uniform(0.6, 1.0, k),
        "n_gabors": rng.integers(0, MAX_GABORS + 1, n),
        "g_centre": rng.uniform(0.15, 0.85, g + (2,)),
        "g_sigma": rng.uniform(0.04, 0.15, g),
        "g_cycles": rng.uniform(4.0, 16.0, g),         # cycles per image width
        "g_angle": rng.uniform(0, np.pi, g),
        "g_phase": rng.uniform(0, 2 * np.pi, g),
        "g_amplitude": rng.uniform(0.15, 0.45, g),
        "g_colour": rng.normal(1.0, 0.5, g + (3,)),
        "contrast": rng.uniform(0.35, 1.0, n),
    }


def _rotated(centre: np.ndarray, angle: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (along, across) of every pixel in each image's frame rotated by ``angle`` about ``centre``."""
    dx = xs[None] - centre[:, 0, None, None]
    dy = ys[None] - centre[:, 1, None, None]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    return dx * cos + dy * sin, -dx * sin + dy * cos


def _render(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    n = len(p["contrast"])
    axis = ((np.arange(size) + 0.5) / size).astype(np.float32)
    xs, ys = np.meshgrid(axis, axis)  # xs varies along columns, ys along rows
    weights = _interpolation(size, FIELD_KNOTS)
    image = np.ascontiguousarray((weights @ p["field"] @ weights.T).transpose(0, 2, 3, 1))
    for slot in range(MAX_SHAPES):
        u, v = _rotated(p["centre"][:, slot], p["angle"][:, slot], xs, ys)
        kind = p["kind"][:, slot]
        half = np.where(kind == 2, p["bar_half"][:, slot], p["half"][:, slot])
        width = np.where(kind == 2, p["bar_width"][:, slot], p["half"][:, slot] * p["aspect"][:, slot])
        a, b = half[:, None, None], width[:, None, None]
        # Signed distance to the edge (in image widths; approximate for ellipses), then a one-pixel ramp.
        box = np.maximum(np.abs(u) - a, np.abs(v) - b)
        ellipse = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1) * b
        distance = np.where((kind == 0)[:, None, None], ellipse, box)
        alpha = np.clip(0.5 - distance * size, 0.0, 1.0)
        alpha *= (p["opacity"][:, slot] * (slot < p["n_shapes"]))[:, None, None]
        image += alpha[..., None] * (p["colour"][:, slot, None, None, :] - image)
    for slot in range(MAX_GABORS):
        u, v = _rotated(p["g_centre"][:, slot], p["g_angle"][:, slot], xs, ys)
        sigma = p["g_sigma"][:, slot, None, None]
        carrier = np.cos(2 * np.pi * p["g_cycles"][:, slot, None, None] * u + p["g_phase"][:, slot, None, None])
        envelope = np.exp(-(u**2 + v**2) / (2 * sigma**2))
        amplitude = (p["g_amplitude"][:, slot] * (slot < p["n_gabors"]))[:, None, None]
        image = image + (amplitude * carrier * envelope)[..., None] * p["g_colour"][:, slot, None, None, :]
    mean = image.mean(axis=(1, 2, 3), keepdims=True)
    image = mean + p["contrast"][:, None, None, None] * (image - mean)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def make_images(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` distinct procedural scenes of ``size`` x ``size`` pixels, deterministic by ``seed``.

    Returns
    -------
    ndarray of uint8, shape (n, size, size, 3)
    """
    if n < 0 or size < 8:
        raise ConfigError(f"make_images needs n >= 0 and size >= 8; got n={n}, size={size}")
    params = _draw(np.random.default_rng(seed), n)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for start in range(0, n, _BATCH):
        batch = {key: value[start:start + _BATCH].astype(np.float32) if value.dtype.kind == "f"
                 else value[start:start + _BATCH] for key, value in params.items()}
        out[start:start + _BATCH] = _render(batch, size)
    return out
