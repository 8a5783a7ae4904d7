"""Procedural pedestrian crops: every PA-100K attribute changes the pixels where it lives on a person.

The figure is drawn with PIL primitives directly at the final (small) crop size, so one image costs a
few milliseconds. Randomness is split into three independent streams (figure style, background,
post-processing) and the style stream is consumed identically whatever the labels are: rendering the
same generator state with one attribute flipped changes only that attribute's pixels, which makes the
renderer testable and the labels learnable. Geometry is expressed in fractions of the figure height
``h`` measured from the top of the head (``y(f)``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from data_modules.attributes import PA100K_ATTRIBUTES
from data_modules.synthetic.painter import Painter
from data_modules.synthetic.style import (
    _IDX,
    Box,
    FigureLayout,
    _colour,
    _shade,
    _Style,
)

__all__ = ["FigureLayout", "render_pedestrian", "render_pedestrian_with_layout"]


def _background(w: int, h: int, rng: np.random.Generator, difficulty: float) -> Image.Image:
    """Muted wall/ground gradient plus ``difficulty``-scaled clutter (buildings, poles, windows, bushes)."""
    cols = rng.uniform(50, 215, size=(3, 3))
    cols = cols.mean(1, keepdims=True) * 0.5 + cols * 0.5
    t = (np.arange(h, dtype=np.float32) / h)[:, None]
    rows = np.where(t < rng.uniform(0.45, 0.8), cols[0] + (cols[1] - cols[0]) * t, cols[2] * (0.8 + 0.35 * t))
    img = Image.fromarray(np.repeat(np.clip(rows, 0, 255).astype(np.uint8)[:, None, :], w, axis=1), "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(rng.poisson(7.0 * difficulty)):
        kind, col = int(rng.integers(4)), tuple(int(v) for v in rng.integers(20, 236, 3))
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.1, 1.0) * h
        if kind == 0:
            d.rectangle((x0, y0, x0 + rng.uniform(0.1, 0.7) * w, y0 + rng.uniform(0.05, 0.5) * h), fill=col)
        elif kind == 1:
            end = (x0 + rng.uniform(-0.3, 0.3) * w, y0 + rng.uniform(0.2, 1.0) * h)
            d.line(((x0, y0), end), fill=col, width=int(rng.integers(1, 6)))
        elif kind == 2:
            d.ellipse((x0, y0, x0 + rng.uniform(0.1, 0.5) * w, y0 + rng.uniform(0.05, 0.25) * h), fill=col)
        else:
            step = rng.uniform(0.08, 0.2) * w
            for i in range(3):
                for j in range(2):
                    x, y = x0 + i * step, y0 + j * step
                    d.rectangle((x, y, x + step * 0.6, y + step * 0.6), fill=col)
    return img


def _occlude(img: Image.Image, lay: FigureLayout, rng: np.random.Generator, difficulty: float) -> None:
    """About 15 % of images (at difficulty 1): a foreground block hides a side, the legs or a corner."""
    r = rng.random(6)
    if r[0] >= 0.15 * difficulty:
        return
    w, h = img.size
    col = _colour(rng.random(4))
    kind, fig_w = int(r[1] * 3), lay.right - lay.left
    box: Box
    if kind == 0:  # pole/other person at one side
        cover = (0.2 + 0.3 * r[2]) * fig_w
        y0 = lay.y(0.6 * r[4]) if r[5] < 0.5 else 0
        box = (0, y0, lay.left + cover, h) if r[3] < 0.5 else (lay.right - cover, y0, w, h)
    elif kind == 1:  # car/bench/railing in front of the legs
        box = (0, lay.y(0.55 + 0.3 * r[2]), w, h)
    else:  # object in a corner
        y0 = lay.y(0.2 + 0.5 * r[2])
        x1 = max(2.0, lay.left + (0.3 + 0.4 * r[4]) * fig_w)
        box = (0, y0, x1, y0 + 0.35 * lay.height) if r[3] < 0.5 else (w - x1, y0, w, y0 + 0.35 * lay.height)
    d = ImageDraw.Draw(img)
    d.rectangle(box, fill=col, outline=_shade(col, 0.6), width=2)
    d.line(((box[0], (box[1] + box[3]) / 2), (box[2], (box[1] + box[3]) / 2)), fill=_shade(col, 0.8), width=2)


def _camera(img: Image.Image, rng: np.random.Generator, difficulty: float) -> Image.Image:
    """Exposure/white-balance jitter, sensor noise, low resolution and blur, all scaled by ``difficulty``."""
    r = rng.random(9)
    if difficulty <= 0:
        return img
    arr = np.asarray(img, dtype=np.float32)
    gain, bias = 1 + difficulty * (r[0] - 0.5) * 0.5, difficulty * (r[1] - 0.5) * 50
    arr = arr * gain + bias + difficulty * (r[2:5] - 0.5) * 24
    arr += rng.standard_normal(arr.shape, dtype=np.float32) * (difficulty * (1 + 4 * r[5]))
    img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGB")
    if r[6] < 0.25 * difficulty:
        f = 0.6 + 0.3 * r[7]
        small = img.resize(
            (max(8, round(img.width * f)), max(8, round(img.height * f))), Image.Resampling.BILINEAR
        )
        img = small.resize(img.size, Image.Resampling.BILINEAR)
    radius = float(difficulty * (0.15 + 0.5 * r[8]))
    return img.filter(ImageFilter.GaussianBlur(radius)) if radius > 0.05 else img


def render_pedestrian_with_layout(
    labels: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0
) -> tuple[Image.Image, FigureLayout]:
    """Render one pedestrian crop and report where the figure is (for tests and debugging).

    Args:
        labels: 26 PA-100K labels (raw order, 0/1). Exclusive groups should hold; if several are set,
            the first of Back/Side wins for the view and AgeLess18/AgeOver60 win over adult.
        rng: consumed by exactly one draw; the same state gives the same image.
        difficulty: scales background clutter, occlusion, colour jitter, noise and blur (0 = clean).
    """
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != len(PA100K_ATTRIBUTES):
        raise ValueError(f"expected {len(PA100K_ATTRIBUTES)} labels, got {labels.shape[0]}")
    lab = {name: bool(labels[j]) for name, j in _IDX.items()}
    difficulty = max(0.0, float(difficulty))
    s_style, s_bg, s_cam = (np.random.default_rng(int(v)) for v in rng.integers(0, 2**63 - 1, size=3))
    style = _Style(s_style)
    h = int(110 + style.u["size"] * 111)
    w = round(h * (0.4 + 0.2 * style.u["aspect"]))
    img = _background(w, h, s_bg, difficulty)
    painter = Painter(img, lab, style)
    painter.paint()
    layout = painter.layout()
    _occlude(img, layout, s_cam, difficulty)
    return _camera(img, s_cam, difficulty), layout


def render_pedestrian(labels: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0) -> Image.Image:
    """Render one RGB pedestrian crop (110–220 px high) whose appearance encodes ``labels``."""
    return render_pedestrian_with_layout(labels, rng, difficulty)[0]
