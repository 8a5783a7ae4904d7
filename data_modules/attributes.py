"""Attribute vocabularies of the PAR datasets, exactly as spelled in the distributed files."""

from __future__ import annotations

# PA-100K `annotation.mat` `attributes` cell, raw order (note `boots` and `Skirt&Dress`).
PA100K_ATTRIBUTES: tuple[str, ...] = (
    "Female",
    "AgeOver60",
    "Age18-60",
    "AgeLess18",
    "Front",
    "Side",
    "Back",
    "Hat",
    "Glasses",
    "HandBag",
    "ShoulderBag",
    "Backpack",
    "HoldObjectsInFront",
    "ShortSleeve",
    "LongSleeve",
    "UpperStride",
    "UpperLogo",
    "UpperPlaid",
    "UpperSplice",
    "LowerStripe",
    "LowerPattern",
    "LongCoat",
    "Trousers",
    "Shorts",
    "Skirt&Dress",
    "boots",
)

# Approximate PA-100K trainval positive ratios (raw order). The synthetic generator samples
# labels to match these; they are targets for realism, not values any loader relies on.
# fmt: off
PA100K_POSITIVE_RATIOS: tuple[float, ...] = (
    0.460, 0.013, 0.924, 0.062,  # Female, AgeOver60, Age18-60, AgeLess18
    0.353, 0.295, 0.353,  # Front, Side, Back
    0.044, 0.180,  # Hat, Glasses
    0.185, 0.192, 0.169, 0.0093,  # HandBag, ShoulderBag, Backpack, HoldObjectsInFront
    0.270, 0.652,  # ShortSleeve, LongSleeve
    0.048, 0.145, 0.096, 0.251,  # UpperStride, UpperLogo, UpperPlaid, UpperSplice
    0.122, 0.089, 0.030,  # LowerStripe, LowerPattern, LongCoat
    0.583, 0.164, 0.112, 0.0064,  # Trousers, Shorts, Skirt&Dress, boots
)
# fmt: on

# Mutually exclusive groups (indices into PA100K_ATTRIBUTES): at most one positive per row.
PA100K_EXCLUSIVE_GROUPS: tuple[tuple[int, ...], ...] = (
    (1, 2, 3),  # age
    (4, 5, 6),  # view
    (13, 14),  # sleeves
    (22, 23, 24),  # lower-body garment
)

# PETA `PETA.mat` `attribute` cell, first 35 entries (the evaluated attributes, raw order; spec §1.3).
PETA_EVAL_ATTRIBUTES: tuple[str, ...] = (
    "personalLess30",
    "personalLess45",
    "personalLess60",
    "personalLarger60",
    "carryingBackpack",
    "carryingOther",
    "lowerBodyCasual",
    "upperBodyCasual",
    "lowerBodyFormal",
    "upperBodyFormal",
    "accessoryHat",
    "upperBodyJacket",
    "lowerBodyJeans",
    "footwearLeatherShoes",
    "upperBodyLogo",
    "hairLong",
    "personalMale",
    "carryingMessengerBag",
    "accessoryMuffler",
    "accessoryNothing",
    "carryingNothing",
    "upperBodyPlaid",
    "carryingPlasticBags",
    "footwearSandals",
    "footwearShoes",
    "lowerBodyShorts",
    "upperBodyShortSleeve",
    "lowerBodyShortSkirt",
    "footwearSneaker",
    "upperBodyThinStripes",
    "accessorySunglasses",
    "lowerBodyTrousers",
    "upperBodyTshirt",
    "upperBodyOther",
    "upperBodyVNeck",
)
