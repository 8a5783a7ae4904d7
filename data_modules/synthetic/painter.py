"""The figure painter: one method per body region, drawn from a label dict and a random style."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from data_modules.synthetic.accessories import AccessoriesMixin
from data_modules.synthetic.style import (
    Box,
    Colour,
    FigureLayout,
    Point,
    _contrast,
    _shade,
    _Style,
)

__all__ = ["Painter"]


class Painter(AccessoriesMixin):
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
