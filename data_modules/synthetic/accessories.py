"""Accessories of a synthetic figure: glasses, hat, bags, backpack and a box held in front."""

from __future__ import annotations

from PIL import ImageDraw

from data_modules.synthetic.style import Box, Colour, Point, _contrast, _shade

__all__ = ["AccessoriesMixin"]


class AccessoriesMixin:
    """Accessory drawing for the figure painter; the painter sets every attribute declared here."""

    d: ImageDraw.ImageDraw
    lab: dict[str, bool]
    u: dict[str, float]
    c: dict[str, Colour]
    view: str
    cx: float
    h: float
    s: int
    sh: float
    hip: float
    top: float
    y_sh: float
    y_waist: float
    lean: float
    head_w: float
    head_h: float
    hair: Colour

    def _box(self) -> Box:  # implemented by the painter
        raise NotImplementedError

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
