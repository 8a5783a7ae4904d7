"""Palette, random style and layout of one synthetic figure (the renderer's shared vocabulary)."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from data_modules.attributes import PA100K_ATTRIBUTES

Colour = tuple[int, int, int]
Point = tuple[float, float]
Box = tuple[float, float, float, float]

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
        c["upper2"] = _contrast(c["upper2"], c["upper"], 90)
        c["upper_pat"] = _contrast(c["upper_pat"], c["upper"])
        c["lower_pat"] = _contrast(c["lower_pat"], c["lower"])
        dark_top = (
            _lum(c["upper"]) < 128
        )  # logos are saturated prints, light on dark tops, dark on light ones
        hue = float(rows[_COLOURS.index("logo"), 1])
        logo = colorsys.hsv_to_rgb(hue, 0.8, 1.0) if dark_top else colorsys.hsv_to_rgb(hue, 0.9, 0.35)
        c["logo"] = _contrast(_clip(np.array(logo) * 255), c["upper"], 110)
        c["pack"] = _contrast(c["pack"], c["upper"], 70)
        c["strap"] = _contrast(_shade(c["sbag"], 0.6), c["upper"], 60)
        c["pack_strap"] = _contrast(_shade(c["pack"], 0.55), c["upper"], 80)
        c["skin"] = _SKIN[int(self.u["skin"] * len(_SKIN))]
        c["hair"] = _HAIR[int(self.u["hair"] * len(_HAIR))]
        grey = int(175 + 60 * self.u["grey"])
        c["grey_hair"] = (grey, grey, grey - 6)
        c["boots"] = _BOOTS[int(self.u["boot"] * len(_BOOTS))]
