"""Procedural pedestrian crops: every PA-100K attribute changes the pixels where it lives on a person.

The figure is drawn with PIL primitives directly at the final (small) crop size, so one image costs a
few milliseconds. Randomness is split into three independent streams (figure style, background,
post-processing) and the style stream is consumed identically whatever the labels are: rendering the
same generator state with one attribute flipped changes only that attribute's pixels, which makes the
renderer testable and the labels learnable. Geometry is expressed in fractions of the figure height
``h`` measured from the top of the head (``y(f)``).
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from data_modules.attributes import PA100K_ATTRIBUTES

__all__ = ["FigureLayout", "render_pedestrian", "render_pedestrian_with_layout"]

Colour = tuple[int, int, int]
Point = tuple[float, float]

_CLOTHES = ((22, 22, 24), (48, 48, 52), (95, 95, 100), (155, 155, 155), (228, 228, 222), (30, 40, 85),
            (60, 92, 145), (125, 30, 35), (180, 40, 40), (205, 185, 145), (95, 65, 45), (40, 85, 52),
            (215, 125, 155), (232, 205, 60), (70, 115, 185), (245, 245, 245))  # fmt: skip
_SKIN = ((245, 212, 188), (226, 186, 152), (200, 152, 118), (160, 112, 82), (112, 78, 58))
_HAIR = ((18, 14, 12), (44, 30, 20), (82, 56, 36), (140, 100, 62), (205, 172, 112))
_BOOTS = ((14, 14, 14), (48, 32, 22), (34, 34, 40), (72, 46, 30))
_SLOTS = ("size", "aspect", "scale", "xpos", "ypos", "build", "age_h", "arm_a", "arm_b", "leg_a", "leg_b",
          "stride", "facing", "hair_long", "hat_kind", "sunglasses", "bag_side", "bag_size", "logo_kind",
          "logo_size", "splice_kind", "splice_at", "period", "phase", "dress", "skirt_len", "box_size",
          "pack_size", "skin", "hair", "boot", "grey")  # fmt: skip
_COLOURS = ("upper", "upper2", "lower", "upper_pat", "lower_pat", "shoe", "hat", "bag", "sbag", "pack", "box",
            "logo")  # fmt: skip
_IDX = {name: j for j, name in enumerate(PA100K_ATTRIBUTES)}


@dataclass(frozen=True)
class FigureLayout:
    """Where the person was drawn, in image pixels (top = top of the head, bottom = soles)."""

    top: float
    bottom: float
    left: float
    right: float
    cx: float
    view: str

    @property
    def height(self) -> float:
        return self.bottom - self.top

    def y(self, frac: float) -> float:
        """Image row at ``frac`` of the figure height below the top of the head."""
        return self.top + frac * self.height


def _lum(c: Colour) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _clip(c: np.ndarray | tuple[float, ...]) -> Colour:
    r, g, b = (int(min(255, max(0, round(float(v))))) for v in c)
    return (r, g, b)


def _colour(r: np.ndarray) -> Colour:
    """A clothing-like colour from 4 uniforms: mostly common garment colours, sometimes any hue."""
    if r[0] < 0.55:
        return _clip(np.array(_CLOTHES[int(r[1] * len(_CLOTHES))]) + (r[2] - 0.5) * 40)
    return _clip(np.array(colorsys.hsv_to_rgb(r[1], 0.25 + 0.7 * r[2], 0.2 + 0.75 * r[3])) * 255)


def _contrast(c: Colour, ref: Colour, min_diff: float = 75.0) -> Colour:
    """``c`` if it stands out from ``ref`` in brightness, else a much darker/lighter version of it."""
    if abs(_lum(c) - _lum(ref)) >= min_diff:
        return c
    if _lum(ref) > 128:
        return _clip(np.array(c) * 0.25)
    return _clip(255 - (255 - np.array(c)) * 0.2)


def _shade(c: Colour, k: float) -> Colour:
    return _clip(np.array(c) * k)


class _Style:
    """All random choices of one figure, drawn in a fixed order that never depends on the labels."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.u: dict[str, float] = dict(zip(_SLOTS, rng.random(len(_SLOTS)).tolist(), strict=True))
        rows = rng.random((len(_COLOURS), 4))
        self.c: dict[str, Colour] = {k: _colour(r) for k, r in zip(_COLOURS, rows, strict=True)}
        c = self.c
        c["upper2"] = _contrast(c["upper2"], c["upper"], 60)
        c["upper_pat"] = _contrast(c["upper_pat"], c["upper"])
        c["lower_pat"] = _contrast(c["lower_pat"], c["lower"])
        c["logo"] = _contrast(c["logo"], c["upper"], 90)
        c["pack"] = _contrast(c["pack"], c["upper"], 50)
        c["strap"] = _contrast(_shade(c["sbag"], 0.6), c["upper"], 60)
        c["pack_strap"] = _contrast(_shade(c["pack"], 0.55), c["upper"], 60)
        c["skin"] = _SKIN[int(self.u["skin"] * len(_SKIN))]
        c["hair"] = _HAIR[int(self.u["hair"] * len(_HAIR))]
        grey = int(175 + 60 * self.u["grey"])
        c["grey_hair"] = (grey, grey, grey - 6)
        c["boots"] = _BOOTS[int(self.u["boot"] * len(_BOOTS))]


class _Painter:
    """Draws one person onto ``img`` from its label dict and style; one method per body region."""

    def __init__(self, img: Image.Image, lab: dict[str, bool], st: _Style) -> None:
        self.img, self.lab, self.st, self.u, self.c = img, lab, st, st.u, st.c
        self.d = ImageDraw.Draw(img)
        w, h_img = img.size
        u = self.u
        self.view = "Back" if lab["Back"] else "Side" if lab["Side"] else "Front"
        self.child, self.old, self.female = lab["AgeLess18"], lab["AgeOver60"], lab["Female"]
        age_mul = 0.66 + 0.12 * u["age_h"] if self.child else 0.92 + 0.06 * u["age_h"]
        h = h_img * (0.80 + 0.14 * u["scale"]) * age_mul * (0.97 if self.female else 1.0)
        bottom = h_img * (0.99 - 0.05 * u["ypos"])
        self.h, self.top, self.cx = h, bottom - h, w / 2 + (u["xpos"] - 0.5) * 0.14 * w
        self.s = 1 if u["facing"] < 0.5 else -1  # side view: facing right (+1) or left (-1)
        b = 0.92 + 0.18 * u["build"]
        self.head_h = (0.18 if self.child else 0.13) * h
        self.head_w = self.head_h * 0.8
        self.y_sh = self.y(0.16 if self.old else 0.175) + (0.045 * h if self.child else 0.0)
        self.y_waist, self.y_crotch = self.y(0.455 if self.child else 0.42), self.y(0.54 if self.child else 0.5)
        self.y_knee, self.y_ankle = self.y(0.76 if self.child else 0.725), self.y(0.955)
        if self.view == "Side":
            self.sh = self.waist = 0.075 * h * b
            self.hip = 0.08 * h * b
        else:
            self.sh = (0.104 if self.female else 0.125) * h * b * (0.95 if self.old else 1.0)
            self.waist = (0.074 if self.female else 0.092) * h * b
            self.hip = (0.114 if self.female else 0.098) * h * b
        self.arm_w = 0.05 * h * b
        self.lean = 0.045 * h * self.s if (self.old and self.view == "Side") else 0.0
        self.long_hair = u["hair_long"] < (0.85 if self.female else 0.08)
        self.hair = self.c["grey_hair"] if self.old else self.c["hair"]

    def y(self, frac: float) -> float:
        return self.top + frac * self.h

    def layout(self) -> FigureLayout:
        half = max(self.sh, self.hip) + self.arm_w
        return FigureLayout(self.top, self.top + self.h, self.cx - half, self.cx + half, self.cx, self.view)

    # ----------------------------------------------------------------- helpers
    def _limb(self, pts: list[Point], width: float, colour: Colour) -> None:
        self.d.line(pts, fill=colour, width=max(1, round(width)), joint="curve")
        for x, y in (pts[0], pts[-1]):
            r = width / 2
            self.d.ellipse((x - r, y - r, x + r, y + r), fill=colour)

    def _mask(self, polys: list[list[Point]]) -> Image.Image:
        mask = Image.new("L", self.img.size, 0)
        md = ImageDraw.Draw(mask)
        for poly in polys:
            md.polygon(poly, fill=255)
        return mask

    def _paint(self, mask: Image.Image, colour: Colour, pattern: Image.Image | None = None) -> None:
        self.img.paste(colour, mask=mask if pattern is None else ImageChops.multiply(mask, pattern))

    def _stripes(self, period: float, frac: float, vertical: bool, phase: float) -> Image.Image:
        pat = Image.new("L", self.img.size, 0)
        pd = ImageDraw.Draw(pat)
        w, h = self.img.size
        t = (phase - 1.0) * period
        while t < (w if vertical else h):
            box = (t, 0, t + period * frac, h) if vertical else (0, t, w, t + period * frac)
            pd.rectangle(box, fill=255)
            t += period
        return pat

    def _legs(self) -> list[tuple[Point, Point, float, float]]:
        """(hip, ankle, top width, bottom width) per leg, far leg first."""
        u, h, cx = self.u, self.h, self.cx
        hy = self.y_waist + 0.03 * h
        if self.view == "Side":
            a = math.radians(3 + 15 * u["stride"])
            order = (-a, a) if u["leg_a"] < 0.5 else (a, -a)
            return [((cx, hy), (cx + math.tan(t) * (self.y_ankle - hy), self.y_ankle), 0.088 * h, 0.05 * h) for t in order]
        legs = []
        for k, key in ((-1, "leg_a"), (1, "leg_b")):
            hx = cx + k * self.hip * 0.45
            ax = hx + k * math.tan(math.radians(1 + 5 * u[key])) * (self.y_ankle - hy)
            legs.append(((hx, hy), (ax, self.y_ankle), self.hip * 0.95, 0.048 * h))
        return legs

    @staticmethod
    def _leg_part(leg: tuple[Point, Point, float, float], y0: float, y1: float, extra: float = 0.0) -> list[Point]:
        (hx, hy), (ax, ay), wt, wb = leg
        pts = []
        for y, side in ((y0, -1), (y0, 1), (y1, 1), (y1, -1)):
            f = (y - hy) / (ay - hy)
            x, wid = hx + f * (ax - hx), wt + f * (wb - wt)
            pts.append((x + side * (wid / 2 + extra), y))
        return pts
