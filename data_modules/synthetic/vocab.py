"""Map the rendered PA-100K labels (26 columns) onto the PETA, RAP v1 and RAP v2 attribute vocabularies.

The renderer only draws PA-100K's 26 attributes, so each dataset column is either **drawn** (a function
of the render labels: the image shows it) or **random** (drawn with ``rng`` at a plausible ratio; the
image does not show it, so a model can only learn its prior). "random|X" means random but only among
rows with render label X (a sub-type the figure cannot distinguish). All outputs are 0/1 ``uint8``
except RAP v2 column 111 (viewpoint 1-4); the writers add the uncertain 2s and RAP v2 box columns.

PETA (105 columns, spec §1.3)
  drawn:  personalLess30/Less45/Less60/Larger60 (exactly one: AgeLess18 -> Less30, AgeOver60 ->
          Larger60, Age18-60 -> random bin among Less30/Less45/Less60), carryingBackpack = Backpack,
          carryingOther = HandBag | HoldObjectsInFront, accessoryHat = Hat, upperBodyJacket = LongCoat,
          upperBodyLogo = UpperLogo, personalMale = 1 - Female, carryingMessengerBag = ShoulderBag,
          accessoryNothing = no Hat/Muffler/Sunglasses, carryingNothing = no Backpack/MessengerBag/Other/
          PlasticBags, upperBodyPlaid = UpperPlaid, lowerBodyShorts = Shorts,
          upperBodyShortSleeve = ShortSleeve, lowerBodyShortSkirt = Skirt&Dress,
          upperBodyThinStripes = UpperStride, accessorySunglasses = Glasses, lowerBodyTrousers =
          Trousers, footwearBoots = boots, lowerBodyCapri = no Trousers/Shorts/Skirt&Dress (cropped),
          personalFemale = Female, upperBodyLongSleeve = LongSleeve, lowerBodyPlaid = LowerPattern,
          lowerBodyThinStripes = LowerStripe, upperBodyNoSleeve = neither sleeve.
  random: lowerBodyFormal (random|Trousers) and lowerBodyCasual = 1 - lowerBodyFormal,
          upperBodyFormal and upperBodyCasual = 1 - upperBodyFormal, lowerBodyJeans (random|Trousers),
          footwearLeatherShoes/Sandals/Shoes/Sneaker (one of them unless boots), hairLong (P 0.85 women,
          0.08 men, as the renderer's hair) and hairShort = 1 - hairLong, accessoryMuffler,
          carryingPlasticBags, upperBodyTshirt (random|ShortSleeve), upperBodyOther, upperBodyVNeck,
          all 44 colour columns (one colour per region), personalLess15 (random|AgeLess18),
          lowerBodyHotPants (random|Shorts), lowerBodyLongSkirt (random|Skirt&Dress), and
          accessoryHeadphone, carryingBabyBuggy, hairBald, carryingShoppingTro, carryingUmbrella,
          carryingFolder, accessoryHairBand, accessoryKerchief, carryingLuggageCase, footwearStocking,
          upperBodySuit, carryingSuitcase, lowerBodySuits, upperBodySweater, upperBodyThickStripes.

RAP v1 (92 columns, spec §3.3)
  drawn:  Female, AgeLess16 = AgeLess18, Age17-30/Age31-45 (at most one; Age18-60 -> random bin, none
          for AgeOver60), hs-Hat = Hat, hs-Glasses = Glasses, ub-Vest = neither sleeve, ub-Jacket =
          LongCoat, ub-ShortSleeve = ShortSleeve, lb-LongTrousers = Trousers, lb-Skirt/lb-ShortSkirt/
          lb-Dress (exactly one iff Skirt&Dress, sub-type random), shoes-Boots = boots,
          attach-Backpack = Backpack, attach-SingleShoulderBag = ShoulderBag, attach-HandBag = HandBag,
          attach-Box = HoldObjectsInFront, faceFront = Front, faceBack = Back, faceLeft/faceRight
          (exactly one iff Side, side random).
  random: BodyFat/Normal/Thin (one), Customer/Clerk (one), hs-BaldHead, hs-LongHair (as PETA
          hairLong), hs-BlackHair, hs-Muffler, ub-Shirt, ub-Sweater, ub-TShirt (random|ShortSleeve),
          ub-Cotton, ub-SuitUp, ub-Tight, lb-Jeans and lb-TightTrousers (random|Trousers),
          shoes-Leather/Sport/Cloth/Casual (one unless boots), attach-PlasticBag/PaperBag/HandTrunk/
          Other, all 8 action-* columns, the 8 occlusion columns, the 29 colour columns (one per region).

RAP v2 (152 columns, spec §4.3)
  drawn:  Femal, AgeLess16 = AgeLess18, AgeBiger60 = AgeOver60, Age17-30/31-45/46-60 (Age18-60 ->
          random bin; exactly one of the five age columns), hs-Hat = Hat, hs-Glasses = Glasses,
          ub-Vest = neither sleeve, ub-Jacket = LongCoat, ub-ShortSleeve = ShortSleeve,
          lb-LongTrousers = Trousers, lb-Shorts = Shorts, lb-Skirt/ShortSkirt/LongSkirt/Dress (exactly
          one iff Skirt&Dress, sub-type random), shoes-Boots = boots, attachment-Backpack = Backpack,
          attachment-ShoulderBag = ShoulderBag, attachment-HandBag = HandBag, attachment-Box =
          HoldObjectsInFront, viewpoint (col 111) = 1 Front, 2 Back, 3/4 Side (left/right random).
  random: BodyFatter/Fat/Normal/Thin/Thiner (one), Customer/Employee (one), hs-BaldHead, hs-LongHair,
          hs-BlackHair, hs-Sunglasses (random|Glasses), hs-Muffler, hs-Mask, ub-Shirt, ub-Sweater,
          ub-TShirt (random|ShortSleeve), ub-Cotton, ub-SuitUp, ub-Tight, ub-Others, lb-Jeans and
          lb-TightTrousers (random|Trousers), shoes-Leather/Sports/Cloth/Sandals/Casual/Other (one
          unless boots), attachment-WaistBag/PlasticBag/PaperBag/HandTrunk/Baby/Other, all 13 action-*
          columns, occlusion columns 112-119, the 42 colour columns (one per region). Columns 120-151
          (boxes) are left 0 here.
"""

from __future__ import annotations

import numpy as np

from data_modules.attributes import PA100K_ATTRIBUTES, PETA_EVAL_ATTRIBUTES
from data_modules.rap import RAP1_ATTRIBUTES, RAP2_EVAL_ATTRIBUTES, RAP2_SELECTED_ATTRIBUTE

__all__ = [
    "PETA_ALL_ATTRIBUTES",
    "PETA_COLOUR_ATTRIBUTES",
    "PETA_EXTRA_ATTRIBUTES",
    "RAP2_ATTRIBUTES",
    "peta_labels_from_pa100k",
    "rap1_labels_from_pa100k",
    "rap2_labels_from_pa100k",
]

_PA = {name: j for j, name in enumerate(PA100K_ATTRIBUTES)}

_PETA_COLOURS = (
    "Black",
    "Blue",
    "Brown",
    "Green",
    "Grey",
    "Orange",
    "Pink",
    "Purple",
    "Red",
    "White",
    "Yellow",
)
# Spec §1.3: columns 35-78 (4 regions × 11 colours) and 79-104 (26 extra binary attributes).
PETA_COLOUR_ATTRIBUTES: tuple[str, ...] = tuple(
    f"{region}{c}" for region in ("upperBody", "lowerBody", "hair", "footwear") for c in _PETA_COLOURS
)
PETA_EXTRA_ATTRIBUTES: tuple[str, ...] = (
    "accessoryHeadphone", "personalLess15", "carryingBabyBuggy", "hairBald", "footwearBoots",
    "lowerBodyCapri", "carryingShoppingTro", "carryingUmbrella", "personalFemale", "carryingFolder",
    "accessoryHairBand", "lowerBodyHotPants", "accessoryKerchief", "lowerBodyLongSkirt",
    "upperBodyLongSleeve", "lowerBodyPlaid", "lowerBodyThinStripes", "carryingLuggageCase",
    "upperBodyNoSleeve", "hairShort", "footwearStocking", "upperBodySuit", "carryingSuitcase",
    "lowerBodySuits", "upperBodySweater", "upperBodyThickStripes",
)  # fmt: skip
PETA_ALL_ATTRIBUTES: tuple[str, ...] = PETA_EVAL_ATTRIBUTES + PETA_COLOUR_ATTRIBUTES + PETA_EXTRA_ATTRIBUTES

_RAP2_COLOURS = ("Black", "White", "Gray", "Red", "Green", "Blue", "Silver", "Yellow", "Brown", "Purple",
                 "Pink", "Orange", "Mixture", "Other")  # fmt: skip
# RAP v2 `attribute` (152 names, spec §4.3). Columns 0-111 and 119 are the real names; 112-118 and
# 120-151 are unverified in the spec, so descriptive placeholders are used there.
RAP2_ATTRIBUTES: tuple[str, ...] = (
    ("Femal", "AgeLess16", "Age17-30", "Age31-45", "Age46-60", "AgeBiger60", "BodyFatter", "BodyFat",
     "BodyNormal", "BodyThin", "BodyThiner", "Customer", "Employee", "hs-BaldHead", "hs-LongHair",
     "hs-BlackHair", "hs-Hat", "hs-Glasses", "hs-Sunglasses", "hs-Muffler", "hs-Mask", "ub-Shirt",
     "ub-Sweater", "ub-Vest", "ub-TShirt", "ub-Cotton", "ub-Jacket", "ub-SuitUp", "ub-Tight",
     "ub-ShortSleeve", "ub-Others", "ub-ColorBlack", "ub-ColorWhite", "ub-ColorGray", "up-ColorRed",
     "ub-ColorGreen", "ub-ColorBlue", "ub-ColorSilver", "ub-ColorYellow", "ub-ColorBrown",
     "ub-ColorPurple", "ub-ColorPink", "ub-ColorOrange", "ub-ColorMixture", "ub-ColorOther",
     "lb-LongTrousers", "lb-Shorts", "lb-Skirt", "lb-ShortSkirt", "lb-LongSkirt", "lb-Dress", "lb-Jeans",
     "lb-TightTrousers")
    + tuple(f"lb-Color{c}" for c in _RAP2_COLOURS)
    + ("shoes-Leather", "shoes-Sports", "shoes-Boots", "shoes-Cloth", "shoes-Sandals", "shoes-Casual",
       "shoes-Other")
    + tuple(f"shoes-Color{c}" for c in _RAP2_COLOURS)
    + ("attachment-Backpack", "attachment-ShoulderBag", "attachment-HandBag", "attachment-WaistBag",
       "attachment-Box", "attachment-PlasticBag", "attachment-PaperBag", "attachment-HandTrunk",
       "attachment-Baby", "attachment-Other", "action-Calling", "action-StrechOutArm", "action-Talking",
       "action-Gathering", "action-LyingCounter", "action-Squatting", "action-Running", "action-Holding",
       "action-Pushing", "action-Pulling", "action-CarryingByArm", "action-CarryingByHand",
       "action-Other", "viewpoint", "occlusion-Left", "occlusion-Right", "occlusion-Up",
       "occlusion-Down", "occlusion-TypeEnvironment", "occlusion-TypeAttachment", "occlusion-TypePerson",
       "occlustion-TypeOther")
    + tuple(f"{part}-{k}" for part in ("fullbody", "headshoulder", "upperbody", "lowerbody")
            for k in ("x", "y", "w", "h"))
    + tuple(f"coordinate-{k}" for k in range(136, 152))
)  # fmt: skip
assert len(PETA_ALL_ATTRIBUTES) == 105 and len(RAP2_ATTRIBUTES) == 152
assert tuple(RAP2_ATTRIBUTES[i - 1] for i in RAP2_SELECTED_ATTRIBUTE) == RAP2_EVAL_ATTRIBUTES


def _col(y26: np.ndarray, name: str) -> np.ndarray:
    return y26[:, _PA[name]].astype(bool)


def _pick(rng: np.random.Generator, n: int, probs: tuple[float, ...]) -> np.ndarray:
    """Category index per row (0..len(probs)-1) from (unnormalised) ``probs``."""
    p = np.asarray(probs, dtype=float)
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1)


class _Builder:
    """Name-addressed label matrix; ``rand(name, p, given)`` draws Bernoulli(p) where ``given``."""

    def __init__(self, names: tuple[str, ...], n: int, rng: np.random.Generator) -> None:
        self.idx = {name: j for j, name in enumerate(names)}
        self.out = np.zeros((n, len(names)), dtype=np.uint8)
        self.rng, self.n = rng, n

    def set(self, name: str, value: np.ndarray) -> None:
        self.out[:, self.idx[name]] = value

    def get(self, name: str) -> np.ndarray:
        return self.out[:, self.idx[name]].astype(bool)

    def rand(self, name: str, p: float, given: np.ndarray | None = None) -> np.ndarray:
        v = self.rng.random(self.n) < p
        if given is not None:
            v &= given
        self.set(name, v)
        return v

    def one_of(
        self, names: tuple[str, ...], probs: tuple[float, ...], where: np.ndarray | None = None
    ) -> None:
        """Exactly one of ``names`` in the rows ``where`` (all rows if None), none elsewhere."""
        choice = _pick(self.rng, self.n, probs)
        where = np.ones(self.n, bool) if where is None else where
        for k, name in enumerate(names):
            self.set(name, (choice == k) & where)

    def colours(self, names: tuple[str, ...]) -> None:
        """One colour per region, dark colours more common."""
        probs = tuple(4.0 if "Black" in s else 2.0 if ("Gr" in s or "White" in s or "Blue" in s) else 1.0
                      for s in names)  # fmt: skip
        self.one_of(names, probs)


def _check(y26: np.ndarray) -> tuple[np.ndarray, int]:
    y = np.asarray(y26)
    if y.ndim != 2 or y.shape[1] != len(PA100K_ATTRIBUTES):
        raise ValueError(f"y26 must be (N, {len(PA100K_ATTRIBUTES)}), got shape {y.shape}")
    return y, y.shape[0]


def _hair_long(rng: np.random.Generator, female: np.ndarray) -> np.ndarray:
    return rng.random(len(female)) < np.where(female, 0.85, 0.08)  # the renderer's own long-hair rates


def peta_labels_from_pa100k(y26: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 105)`` uint8 PETA labels (column order :data:`PETA_ALL_ATTRIBUTES`) from ``(N, 26)`` render labels."""
    y, n = _check(y26)
    b = _Builder(PETA_ALL_ATTRIBUTES, n, rng)
    female, trousers, shorts = _col(y, "Female"), _col(y, "Trousers"), _col(y, "Shorts")
    skirt, boots, short_sl, long_sl = (
        _col(y, "Skirt&Dress"),
        _col(y, "boots"),
        _col(y, "ShortSleeve"),
        _col(y, "LongSleeve"),
    )
    # age: exactly one bin
    mid = _pick(rng, n, (0.5, 0.35, 0.15))
    adult = _col(y, "Age18-60")
    b.set("personalLess30", _col(y, "AgeLess18") | (adult & (mid == 0)))
    b.set("personalLess45", adult & (mid == 1))
    b.set("personalLess60", adult & (mid == 2))
    b.set("personalLarger60", _col(y, "AgeOver60"))
    b.rand("personalLess15", 0.5, _col(y, "AgeLess18"))
    b.set("personalMale", ~female)
    b.set("personalFemale", female)
    # carrying
    b.set("carryingBackpack", _col(y, "Backpack"))
    b.set("carryingMessengerBag", _col(y, "ShoulderBag"))
    b.set("carryingOther", _col(y, "HandBag") | _col(y, "HoldObjectsInFront"))
    b.rand("carryingPlasticBags", 0.08)
    carrying = ("carryingBackpack", "carryingMessengerBag", "carryingOther", "carryingPlasticBags")
    b.set("carryingNothing", ~np.any([b.get(c) for c in carrying], axis=0))
    # head
    b.set("accessoryHat", _col(y, "Hat"))
    b.set("accessorySunglasses", _col(y, "Glasses"))
    b.rand("accessoryMuffler", 0.08)
    b.set(
        "accessoryNothing",
        ~(b.get("accessoryHat") | b.get("accessorySunglasses") | b.get("accessoryMuffler")),
    )
    hair_long = _hair_long(rng, female)
    b.set("hairLong", hair_long)
    b.set("hairShort", ~hair_long)
    # upper body
    b.set("upperBodyJacket", _col(y, "LongCoat"))
    b.set("upperBodyLogo", _col(y, "UpperLogo"))
    b.set("upperBodyPlaid", _col(y, "UpperPlaid"))
    b.set("upperBodyThinStripes", _col(y, "UpperStride"))
    b.set("upperBodyShortSleeve", short_sl)
    b.set("upperBodyLongSleeve", long_sl)
    b.set("upperBodyNoSleeve", ~short_sl & ~long_sl)
    formal_up = b.rand("upperBodyFormal", 0.15)
    b.set("upperBodyCasual", ~formal_up)
    b.rand("upperBodyTshirt", 0.6, short_sl)
    b.rand("upperBodyOther", 0.45)
    b.rand("upperBodyVNeck", 0.02)
    # lower body
    b.set("lowerBodyTrousers", trousers)
    b.set("lowerBodyShorts", shorts)
    b.set("lowerBodyShortSkirt", skirt)
    b.set("lowerBodyCapri", ~trousers & ~shorts & ~skirt)
    b.set("lowerBodyPlaid", _col(y, "LowerPattern"))
    b.set("lowerBodyThinStripes", _col(y, "LowerStripe"))
    formal_low = b.rand("lowerBodyFormal", 0.25, trousers)
    b.set("lowerBodyCasual", ~formal_low)
    b.rand("lowerBodyJeans", 0.5, trousers & ~formal_low)
    b.rand("lowerBodyHotPants", 0.3, shorts)
    b.rand("lowerBodyLongSkirt", 0.3, skirt)
    # footwear
    b.set("footwearBoots", boots)
    b.one_of(("footwearLeatherShoes", "footwearSandals", "footwearShoes", "footwearSneaker"),
             (0.30, 0.03, 0.40, 0.27), ~boots)  # fmt: skip
    for region in ("upperBody", "lowerBody", "hair", "footwear"):
        b.colours(tuple(f"{region}{c}" for c in _PETA_COLOURS))
    for name, p in (
        ("accessoryHeadphone", 0.01), ("carryingBabyBuggy", 0.01), ("hairBald", 0.01),
        ("carryingShoppingTro", 0.01), ("carryingUmbrella", 0.02), ("carryingFolder", 0.02),
        ("accessoryHairBand", 0.01), ("accessoryKerchief", 0.01), ("carryingLuggageCase", 0.03),
        ("footwearStocking", 0.02), ("upperBodySuit", 0.05), ("carryingSuitcase", 0.02),
        ("lowerBodySuits", 0.05), ("upperBodySweater", 0.05), ("upperBodyThickStripes", 0.02),
    ):  # fmt: skip
        b.rand(name, p)
    return b.out


def _shared_rap(b: _Builder, y: np.ndarray, attach: str) -> None:
    """Columns whose mapping is the same in RAP v1 and v2 (names differ only by the attachment prefix)."""
    rng = b.rng
    female = _col(y, "Female")
    short_sl, long_sl, trousers = _col(y, "ShortSleeve"), _col(y, "LongSleeve"), _col(y, "Trousers")
    b.set("AgeLess16", _col(y, "AgeLess18"))
    b.rand("hs-BaldHead", 0.005)
    b.set("hs-LongHair", _hair_long(rng, female))
    b.rand("hs-BlackHair", 0.9)
    b.set("hs-Hat", _col(y, "Hat"))
    b.set("hs-Glasses", _col(y, "Glasses"))
    b.rand("hs-Muffler", 0.05)
    b.set("ub-Vest", ~short_sl & ~long_sl)
    b.set("ub-Jacket", _col(y, "LongCoat"))
    b.set("ub-ShortSleeve", short_sl)
    b.rand("ub-TShirt", 0.6, short_sl)
    for name, p in (("ub-Shirt", 0.08), ("ub-Sweater", 0.07), ("ub-Cotton", 0.15), ("ub-SuitUp", 0.05),
                    ("ub-Tight", 0.03)):  # fmt: skip
        b.rand(name, p)
    b.set("lb-LongTrousers", trousers)
    jeans = b.rand("lb-Jeans", 0.45, trousers)
    b.rand("lb-TightTrousers", 0.2, trousers & ~jeans)
    b.set("shoes-Boots", _col(y, "boots"))
    b.set(f"{attach}-Backpack", _col(y, "Backpack"))
    b.set(f"{attach}-Box", _col(y, "HoldObjectsInFront"))
    b.set(f"{attach}-HandBag", _col(y, "HandBag"))
    for name, p in (("PlasticBag", 0.06), ("PaperBag", 0.04), ("HandTrunk", 0.02), ("Other", 0.1)):
        b.rand(f"{attach}-{name}", p)


def rap1_labels_from_pa100k(y26: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 92)`` uint8 RAP v1 labels (column order ``RAP1_ATTRIBUTES``) from ``(N, 26)`` render labels."""
    y, n = _check(y26)
    b = _Builder(RAP1_ATTRIBUTES, n, rng)
    b.set("Female", _col(y, "Female"))
    mid = _pick(rng, n, (0.55, 0.40, 0.05))  # the last bin (older adults) has no RAP v1 column
    adult = _col(y, "Age18-60")
    b.set("Age17-30", adult & (mid == 0))
    b.set("Age31-45", adult & (mid == 1))
    b.one_of(("BodyFat", "BodyNormal", "BodyThin"), (0.15, 0.8, 0.05))
    b.one_of(("Customer", "Clerk"), (0.95, 0.05))
    _shared_rap(b, y, "attach")
    b.set("attach-SingleShoulderBag", _col(y, "ShoulderBag"))
    b.one_of(("lb-Skirt", "lb-ShortSkirt", "lb-Dress"), (0.3, 0.3, 0.4), _col(y, "Skirt&Dress"))
    b.one_of(("shoes-Leather", "shoes-Sport", "shoes-Cloth", "shoes-Casual"), (0.3, 0.3, 0.1, 0.3),
             ~_col(y, "boots"))  # fmt: skip
    for name, p in (("action-Calling", 0.03), ("action-Talking", 0.02), ("action-Gathering", 0.05),
                    ("action-Holding", 0.03), ("action-Pusing", 0.01), ("action-Pulling", 0.02),
                    ("action-CarrybyArm", 0.05), ("action-CarrybyHand", 0.15)):  # fmt: skip
        b.rand(name, p)
    side = _col(y, "Side")
    left = rng.random(n) < 0.5
    b.set("faceFront", _col(y, "Front"))
    b.set("faceBack", _col(y, "Back"))
    b.set("faceLeft", side & left)
    b.set("faceRight", side & ~left)
    for name in RAP1_ATTRIBUTES[55:63]:
        b.rand(name, 0.03)
    b.colours(RAP1_ATTRIBUTES[63:75])
    b.colours(RAP1_ATTRIBUTES[75:83])
    b.colours(RAP1_ATTRIBUTES[83:92])
    return b.out


def rap2_labels_from_pa100k(y26: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(N, 152)`` uint8 RAP v2 columns (order :data:`RAP2_ATTRIBUTES`) from ``(N, 26)`` render labels.

    Column 111 (viewpoint) holds 1-4; box columns 120-151 are 0 (the writer fills them).
    """
    y, n = _check(y26)
    b = _Builder(RAP2_ATTRIBUTES, n, rng)
    b.set("Femal", _col(y, "Female"))
    mid = _pick(rng, n, (0.5, 0.35, 0.15))
    adult = _col(y, "Age18-60")
    b.set("Age17-30", adult & (mid == 0))
    b.set("Age31-45", adult & (mid == 1))
    b.set("Age46-60", adult & (mid == 2))
    b.set("AgeBiger60", _col(y, "AgeOver60"))
    b.one_of(
        ("BodyFatter", "BodyFat", "BodyNormal", "BodyThin", "BodyThiner"), (0.03, 0.12, 0.78, 0.06, 0.01)
    )
    b.one_of(("Customer", "Employee"), (0.93, 0.07))
    _shared_rap(b, y, "attachment")
    b.rand("hs-Sunglasses", 0.2, _col(y, "Glasses"))
    b.rand("hs-Mask", 0.02)
    b.rand("ub-Others", 0.05)
    b.set("lb-Shorts", _col(y, "Shorts"))
    b.one_of(("lb-Skirt", "lb-ShortSkirt", "lb-LongSkirt", "lb-Dress"), (0.25, 0.25, 0.15, 0.35),
             _col(y, "Skirt&Dress"))  # fmt: skip
    b.one_of(("shoes-Leather", "shoes-Sports", "shoes-Cloth", "shoes-Sandals", "shoes-Casual", "shoes-Other"),
             (0.28, 0.3, 0.05, 0.04, 0.28, 0.05), ~_col(y, "boots"))  # fmt: skip
    b.set("attachment-ShoulderBag", _col(y, "ShoulderBag"))
    b.rand("attachment-WaistBag", 0.01)
    b.rand("attachment-Baby", 0.005)
    for name in RAP2_ATTRIBUTES[98:111]:
        b.rand(name, 0.03)
    view = np.where(_col(y, "Front"), 1, np.where(_col(y, "Back"), 2, 3 + (rng.random(n) < 0.5)))
    b.set("viewpoint", view)
    for name in RAP2_ATTRIBUTES[112:120]:
        b.rand(name, 0.03)
    b.colours(RAP2_ATTRIBUTES[31:45])
    b.colours(RAP2_ATTRIBUTES[53:67])
    b.colours(RAP2_ATTRIBUTES[74:88])
    return b.out
