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


class _Painter:
    """Draws one person onto ``img`` from its label dict and style; one method per body region."""

    def __init__(self, img: Image.Image, lab: dict[str, bool], st: _Style) -> None:
        self.img, self.lab, self.st, self.u, self.c = img, lab, st, st.u, st.c
        self.d = ImageDraw.Draw(img)
        w, h_img = img.size
        u = self.u
        self.view = "Back" if lab["Back"] else "Side" if lab["Side"] else "Front"
        self.child, self.old, self.female = lab["AgeLess18"], lab["AgeOver60"], lab["Female"]
        age_mul = 0.66 + 0.12 * u["age_h"] if self.child else 0.92 + 0.06 * u["age_h"] - 0.04 * self.old
        h = h_img * (0.80 + 0.14 * u["scale"]) * age_mul * (0.97 if self.female else 1.0)
        bottom = h_img * (0.99 - 0.05 * u["ypos"])
        self.h, self.top, self.cx = h, bottom - h, w / 2 + (u["xpos"] - 0.5) * 0.14 * w
        self.s = 1 if u["facing"] < 0.5 else -1  # side view: facing right (+1) or left (-1)
        b = 0.92 + 0.18 * u["build"]
        self.head_h = (0.18 if self.child else 0.13) * h
        self.head_w = self.head_h * 0.8
        self.y_sh = self.y(0.16 if self.old else 0.175) + (0.045 * h if self.child else 0.0)
        self.y_waist, self.y_crotch = (
            self.y(0.455 if self.child else 0.42),
            self.y(0.54 if self.child else 0.5),
        )
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
            return [
                ((cx, hy), (cx + math.tan(t) * (self.y_ankle - hy), self.y_ankle), 0.088 * h, 0.05 * h)
                for t in order
            ]
        legs = []
        for k, key in ((-1, "leg_a"), (1, "leg_b")):
            hx = cx + k * self.hip * 0.45
            ax = hx + k * math.tan(math.radians(1 + 5 * u[key])) * (self.y_ankle - hy)
            legs.append(((hx, hy), (ax, self.y_ankle), self.hip * 0.95, 0.048 * h))
        return legs

    @staticmethod
    def _leg_part(
        leg: tuple[Point, Point, float, float], y0: float, y1: float, extra: float = 0.0
    ) -> list[Point]:
        (hx, hy), (ax, ay), wt, wb = leg
        pts = []
        for y, side in ((y0, -1), (y0, 1), (y1, 1), (y1, -1)):
            f = (y - hy) / (ay - hy)
            x, wid = hx + f * (ax - hx), wt + f * (wb - wt)
            pts.append((x + side * (wid / 2 + extra), y))
        return pts

    def _dots(self, mask: Image.Image, spacing: float, radius: float, phase: float) -> Image.Image:
        pat = Image.new("L", self.img.size, 0)
        box = mask.getbbox()
        if box is None:
            return pat
        pd = ImageDraw.Draw(pat)
        x0, y0, x1, y1 = box
        for row, y in enumerate(np.arange(y0 + (phase - 1.0) * spacing, y1 + spacing, spacing)):
            for x in np.arange(x0 - spacing + (row % 2) * spacing / 2, x1 + spacing, spacing):
                pd.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
        return pat

    # ----------------------------------------------------------------- body regions
    def lower_body(self) -> None:
        """Skin legs, then the garment (trousers/shorts/skirt/cropped), its prints, then shoes or boots."""
        lab, u, c, h, cx = self.lab, self.u, self.c, self.h, self.cx
        legs = self._legs()
        for i, leg in enumerate(legs):
            far = self.view == "Side" and i == 0
            self.d.polygon(
                self._leg_part(leg, leg[0][1], self.y_ankle), fill=_shade(c["skin"], 0.8 if far else 1)
            )
        if lab["Skirt&Dress"]:
            end = self.y(0.69 + 0.08 * u["skirt_len"])
            flare = self.hip * 1.5
            polys = [[(cx - self.waist, self.y_waist), (cx + self.waist, self.y_waist), (cx + flare, end),
                      (cx - flare, end)]]  # fmt: skip
        else:
            end = self.y_ankle if lab["Trousers"] else self.y(0.61) if lab["Shorts"] else self.y(0.85)
            hb = max(self.hip, self.waist) + 0.005 * h
            y0, y1 = self.y_waist, self.y_crotch
            polys = [[(cx - hb, y0), (cx + hb, y0), (cx + hb, y1), (cx - hb, y1)]]
            polys += [self._leg_part(leg, leg[0][1], end, 0.006 * h) for leg in legs]
        mask = self._mask(polys)
        dress = lab["Skirt&Dress"] and u["dress"] < 0.3
        self._paint(mask, c["upper"] if dress else c["lower"])
        period = (0.04 + 0.015 * u["period"]) * h
        if lab["LowerStripe"]:
            self._paint(mask, c["lower_pat"], self._stripes(period, 0.45, True, u["phase"]))
        if lab["LowerPattern"]:
            dots = self._dots(mask, period * 1.4, max(1.2, 0.017 * h), u["phase"])
            self._paint(mask, _contrast(c["upper2"], c["lower"]), dots)
        for i, leg in enumerate(legs):
            (ax, ay), side = leg[1], self.view == "Side"
            fwd, fw = (self.s * 0.02 * h, 0.1 * h) if side else (0.0, 0.068 * h)
            shade = 0.8 if side and i == 0 else 1.0
            if lab["boots"]:
                shaft = self._leg_part(leg, self.y(0.81), ay, 0.016 * h)
                self.d.polygon(shaft, fill=_shade(c["boots"], shade))
                self.d.line(shaft[:2], fill=_shade(c["boots"], 2.2), width=max(1, round(0.012 * h)))
            foot = c["boots"] if lab["boots"] else c["shoe"]
            self.d.ellipse(
                (ax + fwd - fw / 2, self.y(0.94), ax + fwd + fw / 2, self.y(1.0)), fill=_shade(foot, shade)
            )

    def upper_body(self) -> None:
        """Torso garment (down to the knees for LongCoat) with splice/stripes/plaid/logo."""
        lab, u, c, h, cx, lean = self.lab, self.u, self.c, self.h, self.cx, self.lean
        sleeveless = not (lab["ShortSleeve"] or lab["LongSleeve"])
        sh = self.sh * (0.85 if sleeveless and self.view != "Side" else 1.0)
        ys = self.y_sh
        right = [(self.head_w * 0.3, 1.0, ys - 0.012 * h), (sh, 1.0, ys + 0.012 * h), (sh * 0.93, 0.5, ys + 0.1 * h),
                 (self.waist, 0.0, self.y_waist)]  # fmt: skip
        if lab["LongCoat"]:
            right += [
                (max(self.hip, self.waist) * 1.05, 0.0, self.y_crotch),
                (self.hip * 1.4, 0.0, self.y_knee + 0.03 * h),
            ]
        else:
            right.append((max(self.hip, self.waist) * 1.04, 0.0, self.y_crotch - 0.015 * h))
        poly = [(cx + dx + f * lean, y) for dx, f, y in right] + [
            (cx - dx + f * lean, y) for dx, f, y in right[::-1]
        ]
        mask = self._mask([poly])
        self._paint(mask, c["upper"])
        w_img, h_img = self.img.size
        if lab["UpperSplice"]:
            half = Image.new("L", self.img.size, 0)
            box: Box
            if u["splice_kind"] < 0.5:
                box = (cx + lean * 0.5, 0, w_img, h_img) if self.s > 0 else (0, 0, cx + lean * 0.5, h_img)
            else:
                box = (0, 0, w_img, ys + (0.08 + 0.07 * u["splice_at"]) * h)
            ImageDraw.Draw(half).rectangle(box, fill=255)
            self._paint(mask, c["upper2"], half)
        if lab["UpperStride"]:
            self._paint(
                mask, c["upper_pat"], self._stripes((0.05 + 0.025 * u["period"]) * h, 0.5, False, u["phase"])
            )
        if lab["UpperPlaid"]:
            p = (0.042 + 0.02 * u["period"]) * h
            grid = ImageChops.lighter(
                self._stripes(p, 0.3, False, u["phase"]), self._stripes(p, 0.3, True, u["phase"])
            )
            self._paint(mask, _shade(c["upper_pat"], 0.85), grid)
        if lab["LongCoat"]:
            self._coat_details(mask)
        if lab["UpperLogo"]:
            r = (0.05 + 0.025 * u["logo_size"]) * h * (0.8 if self.view == "Side" else 1.0)
            lx = cx + lean * 0.6 + (self.s * self.sh * 0.5 if self.view == "Side" else 0.0)
            ly = ys + (0.16 if self.view == "Back" else 0.085) * h  # below long hair at the back
            kind = int(u["logo_kind"] * 4)
            if kind == 0:
                self.d.ellipse((lx - r, ly - r, lx + r, ly + r), fill=c["logo"])
            elif kind == 1:
                self.d.rectangle((lx - r, ly - r * 0.8, lx + r, ly + r * 0.8), fill=c["logo"])
            else:
                pts = [(lx, ly - r), (lx + r, ly + r * 0.8), (lx - r, ly + r * 0.8)]
                if kind == 3:
                    pts = [(lx, ly - r), (lx + r, ly), (lx, ly + r), (lx - r, ly)]
                self.d.polygon(pts, fill=c["logo"])

    def _coat_details(self, mask: Image.Image) -> None:
        """Belt at the waist, plus the open front (inner clothes showing) or the back vent."""
        h, cx, c = self.h, self.cx + self.lean * 0.3, self.c
        belt = Image.new("L", self.img.size, 0)
        ImageDraw.Draw(belt).rectangle(
            (0, self.y_waist - 0.012 * h, self.img.width, self.y_waist + 0.012 * h), fill=255
        )
        self._paint(mask, _shade(c["upper"], 0.5), belt)
        hem = self.y_knee + 0.03 * h
        if self.view == "Front":
            strip = [(cx - 0.012 * h, self.y_sh + 0.03 * h), (cx + 0.012 * h, self.y_sh + 0.03 * h),
                     (cx + 0.035 * h, hem), (cx - 0.035 * h, hem)]  # fmt: skip
            self._paint(mask, _contrast(c["upper2"], c["upper"], 90), self._mask([strip]))
        elif self.view == "Back":
            self.d.line(
                ((cx, self.y_crotch), (cx, hem)), fill=_shade(c["upper"], 0.5), width=max(1, round(0.01 * h))
            )

    def _box(self) -> Box:
        h, u, ys = self.h, self.u, self.y_sh
        bw, bh = (0.22 + 0.08 * u["box_size"]) * h, (0.12 + 0.05 * u["box_size"]) * h
        if self.view == "Side":
            x0 = self.cx + self.lean + self.s * self.sh * 0.6
            x1 = x0 + self.s * bw * 0.8
            return (min(x0, x1), ys + 0.12 * h, max(x0, x1), ys + 0.12 * h + bh)
        if self.view == "Back":
            bw = 2 * self.sh + 0.07 * h
        return (self.cx - bw / 2, ys + 0.15 * h, self.cx + bw / 2, ys + 0.15 * h + bh)

    def _arms(self) -> list[list[Point]]:
        """Arm polylines shoulder→elbow→wrist (forearm omitted when hidden behind the body)."""
        lab, u, h, ys = self.lab, self.u, self.h, self.y_sh + 0.02 * self.h
        ul, fl = 0.165 * h, 0.15 * h
        hold = lab["HoldObjectsInFront"]
        if self.view == "Side":
            s, sx = self.s, self.cx + self.lean
            if hold:
                box = self._box()
                return [
                    [
                        (sx, ys),
                        (sx + s * 0.03 * h, ys + 0.13 * h),
                        (box[2] if s < 0 else box[0], ys + 0.17 * h),
                    ]
                ]
            phi = math.radians(-25 + 50 * u["arm_a"])
            ex, ey = sx + s * math.sin(phi) * ul, ys + math.cos(phi) * ul
            phi2 = phi + math.radians(5 + 20 * u["arm_b"])
            return [[(sx, ys), (ex, ey), (ex + s * math.sin(phi2) * fl, ey + math.cos(phi2) * fl)]]
        sleeveless = not (lab["ShortSleeve"] or lab["LongSleeve"])
        sh = self.sh * (0.85 if sleeveless else 1.0)
        arms = []
        for k, key in ((-1, "arm_a"), (1, "arm_b")):
            sx = self.cx + k * (sh - self.arm_w * 0.45)
            if hold:
                elbow = (sx + k * 0.02 * h, ys + 0.14 * h)
                box = self._box()
                wrist = (box[0] if k < 0 else box[2], (box[1] + box[3]) / 2)
                arms.append([(sx, ys), elbow] if self.view == "Back" else [(sx, ys), elbow, wrist])
                continue
            a = math.radians(4 + 12 * u[key])
            ex, ey = sx + k * math.sin(a) * ul, ys + math.cos(a) * ul
            arms.append([(sx, ys), (ex, ey), (ex + k * math.sin(a * 0.6) * fl, ey + math.cos(a * 0.6) * fl)])
        return arms

    def arms(self, arms: list[list[Point]]) -> None:
        """Skin arms, then long or short sleeves (none = sleeveless top), then hands."""
        lab, c, aw = self.lab, self.c, self.arm_w
        # UpperSplice colour-blocks the sleeves too: both with the yoke, one with the left/right split.
        spliced = [
            lab["UpperSplice"] and (self.u["splice_kind"] >= 0.5 or i == (self.s > 0)) for i in range(2)
        ]
        for i, pts in enumerate(arms):
            # slightly darker than the torso (folds/shadow), so the arm stays visible against it
            sleeve_col = _shade(c["upper2"] if spliced[i] and len(arms) == 2 else c["upper"], 0.85)
            self._limb(pts, aw, c["skin"])
            (x0, y0), (x1, y1) = pts[0], pts[1]
            if lab["LongSleeve"]:
                sleeve = (
                    pts
                    if len(pts) == 2
                    else [*pts[:2], (x1 + 0.85 * (pts[2][0] - x1), y1 + 0.85 * (pts[2][1] - y1))]
                )
                self._limb(sleeve, aw * 1.12, sleeve_col)
            elif lab["ShortSleeve"]:
                self._limb([(x0, y0), (x0 + 0.55 * (x1 - x0), y0 + 0.55 * (y1 - y0))], aw * 1.3, sleeve_col)
            if len(pts) == 3:
                x, y, r = pts[2][0], pts[2][1], aw * 0.6
                self.d.ellipse((x - r, y - r, x + r, y + r), fill=c["skin"])

    def head(self) -> None:
        """Neck, hair (long for most women; grey when old), face by view, glasses, hat."""
        lab, c, h, s = self.lab, self.c, self.h, self.s
        hw, hh, ht, hx = self.head_w, self.head_h, self.top, self.cx + self.lean * 1.3
        neck = (hx - 0.2 * hw, ht + 0.8 * hh, hx + 0.2 * hw, self.y_sh + 0.01 * h)
        if self.view != "Back":
            self._long_hair(hx)
        self.d.rectangle(neck, fill=_shade(c["skin"], 0.9))
        if self.view == "Back":
            self._long_hair(hx)
        side = self.view == "Side"
        self.d.ellipse(
            (hx - hw * (0.53 if side else 0.5), ht, hx + hw * (0.53 if side else 0.5), ht + hh),
            fill=self.hair,
        )
        y_e, dark = ht + 0.56 * hh, (25, 20, 20)
        er = max(0.7, 0.055 * hw)
        if self.view == "Front":
            top = ht + (0.27 if self.long_hair else 0.22) * hh
            self.d.ellipse((hx - 0.42 * hw, top, hx + 0.42 * hw, ht + hh), fill=c["skin"])
            for k in (-1, 1):
                self.d.ellipse(
                    (hx + k * 0.2 * hw - er, y_e - er, hx + k * 0.2 * hw + er, y_e + er), fill=dark
                )
            self.d.line(((hx - 0.1 * hw, ht + 0.8 * hh), (hx + 0.1 * hw, ht + 0.8 * hh)), fill=(150, 70, 70))
        elif side:
            fx = hx + s * 0.14 * hw
            self.d.ellipse((fx - 0.38 * hw, ht + 0.25 * hh, fx + 0.38 * hw, ht + hh), fill=c["skin"])
            nose = [
                (hx + s * 0.42 * hw, ht + 0.5 * hh),
                (hx + s * 0.62 * hw, ht + 0.68 * hh),
                (hx + s * 0.42 * hw, ht + 0.74 * hh),
            ]
            self.d.polygon(nose, fill=c["skin"])
            self.d.ellipse((hx + s * 0.3 * hw - er, y_e - er, hx + s * 0.3 * hw + er, y_e + er), fill=dark)
        if lab["Glasses"]:
            self._glasses(hx, y_e)
        if lab["Hat"]:
            self._hat(hx)

    def _long_hair(self, hx: float) -> None:
        if not self.long_hair:
            return
        hw, hh, ht, s = self.head_w, self.head_h, self.top, self.s
        yb = self.y_sh + (0.09 if self.view == "Back" else 0.07) * self.h
        if self.view == "Side":
            poly = [(hx - s * 0.1 * hw, ht + 0.3 * hh), (hx - s * 0.56 * hw, ht + 0.35 * hh), (hx - s * 0.62 * hw, yb),
                    (hx - s * 0.05 * hw, yb)]  # fmt: skip
        else:
            a, b = (0.52, 0.62) if self.view == "Back" else (0.6, 0.7)
            poly = [
                (hx - a * hw, ht + 0.38 * hh),
                (hx + a * hw, ht + 0.38 * hh),
                (hx + b * hw, yb),
                (hx - b * hw, yb),
            ]
        self.d.polygon(poly, fill=self.hair)

    def _glasses(self, hx: float, y_e: float) -> None:
        hw, hh, s = self.head_w, self.head_h, self.s
        frame, lw = (18, 18, 22), max(1, round(0.07 * hw))
        lens = (30, 30, 36) if self.u["sunglasses"] < 0.7 else (70, 90, 110)
        rw, rh = max(1.5, 0.22 * hw), max(1.2, 0.14 * hh)
        if self.view == "Front":
            for k in (-1, 1):
                ex = hx + k * 0.21 * hw
                self.d.rectangle((ex - rw, y_e - rh, ex + rw, y_e + rh), fill=lens, outline=frame, width=lw)
            self.d.line(((hx - 0.05 * hw, y_e), (hx + 0.05 * hw, y_e)), fill=frame, width=lw)
        elif self.view == "Side":
            ex = hx + s * 0.38 * hw
            self.d.line(((ex, y_e), (hx - s * 0.15 * hw, y_e)), fill=frame, width=lw)
            self.d.rectangle(
                (ex - rw * 0.7, y_e - rh, ex + rw * 0.7, y_e + rh), fill=lens, outline=frame, width=lw
            )
        else:  # from behind only the temple tips show beside the head
            for k in (-1, 1):
                self.d.line(((hx + k * 0.47 * hw, y_e), (hx + k * 0.56 * hw, y_e)), fill=frame, width=lw)

    def _hat(self, hx: float) -> None:
        hw, hh, ht, s = self.head_w, self.head_h, self.top, self.s
        col = _contrast(self.c["hat"], self.hair, 100)
        kind = self.u["hat_kind"]
        if kind < 0.7:  # cap (with brim) or beanie
            low = 0.4 if kind < 0.45 else 0.5
            self.d.chord(
                (hx - 0.57 * hw, ht - 0.14 * hh, hx + 0.57 * hw, ht + 2 * low * hh), 180, 360, fill=col
            )
            if kind >= 0.45:
                self.d.rectangle(
                    (hx - 0.57 * hw, ht + (low - 0.12) * hh, hx + 0.57 * hw, ht + low * hh),
                    fill=_shade(col, 0.7),
                )
            elif self.view == "Side":
                x1 = hx + s * 0.95 * hw
                self.d.rectangle(
                    (min(hx, x1), ht + 0.32 * hh, max(hx, x1), ht + 0.42 * hh), fill=_shade(col, 0.8)
                )
            elif self.view == "Front":
                self.d.ellipse(
                    (hx - 0.56 * hw, ht + 0.3 * hh, hx + 0.56 * hw, ht + 0.46 * hh), fill=_shade(col, 0.8)
                )
        else:  # brimmed hat
            self.d.rectangle((hx - 0.4 * hw, ht - 0.28 * hh, hx + 0.4 * hw, ht + 0.32 * hh), fill=col)
            self.d.ellipse(
                (hx - 0.85 * hw, ht + 0.2 * hh, hx + 0.85 * hw, ht + 0.42 * hh), fill=_shade(col, 0.85)
            )

    # ----------------------------------------------------------------- carried things
    def shoulder_bag(self) -> None:
        h, u, c = self.h, self.u, self.c
        k = 1 if u["bag_side"] < 0.5 else -1
        if self.view == "Side":
            top, bx = (self.cx + self.lean, self.y_sh - 0.005 * h), self.cx - self.s * (self.hip + 0.02 * h)
        else:
            top, bx = (
                (self.cx + k * self.sh * 0.55, self.y_sh - 0.005 * h),
                self.cx - k * (self.hip + 0.03 * h),
            )
        by = self.y_waist + 0.05 * h
        bw, bh = (0.1 + 0.04 * u["bag_size"]) * h, (0.075 + 0.03 * u["bag_size"]) * h
        self.d.line((top, (bx, by - bh / 2)), fill=c["strap"], width=max(2, round(0.02 * h)))
        bag = _contrast(c["sbag"], c["lower"], 50)
        self.d.rectangle(
            (bx - bw / 2, by - bh / 2, bx + bw / 2, by + bh / 2), fill=bag, outline=_shade(bag, 0.6)
        )

    def backpack(self) -> None:
        h, u, c, cx, ys = self.h, self.u, self.c, self.cx, self.y_sh
        ph = (0.22 + 0.06 * u["pack_size"]) * h
        strap_w = max(2, round(0.034 * h))
        if self.view == "Back":
            pw = self.sh * (0.65 + 0.15 * u["pack_size"])
            self.d.rounded_rectangle((cx - pw, ys - 0.015 * h, cx + pw, ys + ph), radius=0.03 * h, fill=c["pack"],
                                     outline=_shade(c["pack"], 0.6))  # fmt: skip
            self.d.rectangle(
                (cx - pw * 0.7, ys + ph * 0.55, cx + pw * 0.7, ys + ph * 0.92), fill=_shade(c["pack"], 0.75)
            )
        elif self.view == "Side":
            s, x0 = self.s, cx + self.lean - self.s * self.sh * 0.9
            x1 = x0 - s * (0.08 + 0.04 * u["pack_size"]) * h
            self.d.rounded_rectangle((min(x0, x1), ys - 0.01 * h, max(x0, x1), ys + ph), radius=0.02 * h,
                                     fill=c["pack"], outline=_shade(c["pack"], 0.6))  # fmt: skip
            strap = (
                (cx + self.lean - s * 0.2 * self.sh, ys - 0.005 * h),
                (cx + self.lean + s * 0.6 * self.sh, ys + 0.15 * h),
            )
            self.d.line(strap, fill=c["pack_strap"], width=strap_w)
        else:
            for k in (-1, 1):
                strap = ((cx + k * self.sh * 0.52, ys - 0.01 * h), (cx + k * self.sh * 0.42, ys + 0.17 * h))
                self.d.line(strap, fill=c["pack_strap"], width=strap_w)

    def backpack_top(self) -> None:
        """Front view: the pack's top edge shows above the shoulders (drawn before the torso)."""
        pw, ys, h = self.sh * 0.78, self.y_sh, self.h
        self.d.rounded_rectangle((self.cx - pw, ys - 0.045 * h, self.cx + pw, ys + 0.1 * h), radius=0.02 * h,
                                 fill=self.c["pack"])  # fmt: skip

    def box(self) -> None:
        col = _contrast(self.c["box"], self.c["upper"], 80)
        self.d.rectangle(self._box(), fill=col, outline=_shade(col, 0.6), width=max(1, round(0.008 * self.h)))

    def hand_bag(self, arms: list[list[Point]]) -> None:
        h, u = self.h, self.u
        pts = arms[0] if len(arms) == 1 or u["bag_side"] < 0.5 else arms[1]
        ax, ay = pts[1] if self.lab["HoldObjectsInFront"] or len(pts) == 2 else pts[2]
        o = 1.0 if ax >= self.cx else -1.0
        bw, bh = (0.12 + 0.05 * u["bag_size"]) * h, (0.1 + 0.04 * u["bag_size"]) * h
        bx, top = ax + o * 0.012 * h, ay + 0.03 * h
        col = _contrast(self.c["bag"], self.c["lower"], 80)
        for dx in (-0.3, 0.3):
            self.d.line(
                ((ax, ay), (bx + dx * bw, top)), fill=_shade(col, 0.6), width=max(1, round(0.012 * h))
            )
        body = [
            (bx - bw * 0.42, top),
            (bx + bw * 0.42, top),
            (bx + bw / 2, top + bh),
            (bx - bw / 2, top + bh),
        ]
        self.d.polygon(body, fill=col, outline=_shade(col, 0.6))

    def paint(self) -> None:
        """Back-to-front drawing order so that occlusions between body parts look right."""
        lab = self.lab
        self.lower_body()
        if lab["HoldObjectsInFront"] and self.view == "Back":
            self.box()
        if lab["Backpack"] and self.view == "Front":
            self.backpack_top()
        self.upper_body()
        self.head()
        if lab["ShoulderBag"]:
            self.shoulder_bag()
        if lab["Backpack"]:
            self.backpack()
        if lab["HoldObjectsInFront"] and self.view != "Back":
            self.box()
        arms = self._arms()
        self.arms(arms)
        if lab["HandBag"]:
            self.hand_bag(arms)


# --------------------------------------------------------------------- scene and camera
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
    painter = _Painter(img, lab, style)
    painter.paint()
    layout = painter.layout()
    _occlude(img, layout, s_cam, difficulty)
    return _camera(img, s_cam, difficulty), layout


def render_pedestrian(labels: np.ndarray, rng: np.random.Generator, difficulty: float = 1.0) -> Image.Image:
    """Render one RGB pedestrian crop (110–220 px high) whose appearance encodes ``labels``."""
    return render_pedestrian_with_layout(labels, rng, difficulty)[0]
