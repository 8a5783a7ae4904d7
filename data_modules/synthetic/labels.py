"""Sample PA-100K label vectors with realistic marginals and the dataset's exclusivity structure.

The marginals follow ``PA100K_POSITIVE_RATIOS`` so that class imbalance (and therefore weighted losses
and the mA metric) behaves as on the real data. A few mild correlations make the labels less trivially
independent while keeping every marginal: skirts/dresses and hand bags are mostly worn by women, long
coats come with long sleeves, and glasses are rarely labelled on people seen from behind (annotators
cannot see them).
"""

from __future__ import annotations

import numpy as np

from data_modules.attributes import PA100K_ATTRIBUTES, PA100K_POSITIVE_RATIOS

_COL = {name: j for j, name in enumerate(PA100K_ATTRIBUTES)}
_P = dict(zip(PA100K_ATTRIBUTES, PA100K_POSITIVE_RATIOS, strict=True))

# Share of Skirt&Dress positives that are Female, and P(HandBag | Female).
_SKIRT_FEMALE_SHARE = 0.9
_HANDBAG_GIVEN_FEMALE = 0.26
_GLASSES_GIVEN_BACK = 0.05
# Attributes drawn independently with their marginal ratio.
_INDEPENDENT = (
    "Hat",
    "ShoulderBag",
    "Backpack",
    "HoldObjectsInFront",
    "UpperStride",
    "UpperLogo",
    "UpperPlaid",
    "UpperSplice",
    "LowerStripe",
    "LowerPattern",
    "boots",
)


def _categorical(rng: np.random.Generator, probs: np.ndarray, n: int) -> np.ndarray:
    """Vectorised draw of ``n`` category indices from (possibly unnormalised) ``probs``."""
    cdf = np.cumsum(probs / probs.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(probs) - 1)


def _one_hot(out: np.ndarray, names: tuple[str, ...], choice: np.ndarray) -> None:
    """Set ``out[i, names[choice[i]]] = 1``; a choice equal to ``len(names)`` means "none of them"."""
    cols = np.array([_COL[name] for name in names] + [-1])[choice]
    rows = np.flatnonzero(cols >= 0)
    out[rows, cols[rows]] = 1


def sample_pa100k_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` PA-100K label rows (raw attribute order) as an ``(n, 26)`` uint8 0/1 matrix.

    Guarantees: exactly one age class and one view per row; at most one of ShortSleeve/LongSleeve
    (neither = sleeveless top); at most one of Trousers/Shorts/Skirt&Dress (neither = cropped trousers).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = np.zeros((n, len(PA100K_ATTRIBUTES)), dtype=np.uint8)
    female = rng.random(n) < _P["Female"]
    out[:, _COL["Female"]] = female

    ages = ("AgeOver60", "Age18-60", "AgeLess18")
    _one_hot(out, ages, _categorical(rng, np.array([_P[a] for a in ages]), n))
    views = ("Front", "Side", "Back")
    view_p = np.array([_P[v] for v in views])
    view = _categorical(rng, view_p, n)
    _one_hot(out, views, view)

    # Glasses: rarely labelled from behind; the other views compensate so the marginal is kept.
    p_back = view_p[2] / view_p.sum()
    p_glasses_seen = (_P["Glasses"] - p_back * _GLASSES_GIVEN_BACK) / (1.0 - p_back)
    p_glasses = np.where(view == 2, _GLASSES_GIVEN_BACK, p_glasses_seen)
    out[:, _COL["Glasses"]] = rng.random(n) < p_glasses

    sleeves = ("ShortSleeve", "LongSleeve")
    sleeve_p = np.array([_P[s] for s in sleeves] + [1.0 - _P["ShortSleeve"] - _P["LongSleeve"]])
    sleeve = _categorical(rng, sleeve_p, n)
    _one_hot(out, sleeves, sleeve)
    long_coat = (sleeve == 1) & (rng.random(n) < _P["LongCoat"] / _P["LongSleeve"])
    out[:, _COL["LongCoat"]] = long_coat

    # Lower garment conditioned on gender, keeping every marginal (see module docstring).
    lowers = ("Trousers", "Shorts", "Skirt&Dress")
    p_skirt = _P["Skirt&Dress"]
    skirt_f = _SKIRT_FEMALE_SHARE * p_skirt / _P["Female"]
    skirt_m = (1.0 - _SKIRT_FEMALE_SHARE) * p_skirt / (1.0 - _P["Female"])
    other = np.array([_P["Trousers"], _P["Shorts"], 1.0 - _P["Trousers"] - _P["Shorts"] - p_skirt])
    other = other / other.sum()
    lower = np.empty(n, dtype=np.int64)
    for is_female, p_s in ((True, skirt_f), (False, skirt_m)):
        rows = np.flatnonzero(female == is_female)
        probs = np.array([*(other[:2] * (1.0 - p_s)), p_s, other[2] * (1.0 - p_s)])
        lower[rows] = _categorical(rng, probs, len(rows))
    _one_hot(out, lowers, lower)

    hb_m = (_P["HandBag"] - _P["Female"] * _HANDBAG_GIVEN_FEMALE) / (1.0 - _P["Female"])
    out[:, _COL["HandBag"]] = rng.random(n) < np.where(female, _HANDBAG_GIVEN_FEMALE, hb_m)

    indep = rng.random((n, len(_INDEPENDENT))) < np.array([_P[a] for a in _INDEPENDENT])
    out[:, [_COL[a] for a in _INDEPENDENT]] = indep
    return out
