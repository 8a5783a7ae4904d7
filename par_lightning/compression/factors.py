"""Factor containers shared by the decompositions, the layer builders and the alignment scores.

A factorization is plain data (tensors in a frozen dataclass) so the maths can be tested without
building modules, and the modules can be built from factors computed anywhere (CPU, GPU, float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SVDFactors:
    """``W ~= a @ b`` for a weight viewed as ``(Cout, Cin)``; balanced split ``a = U S^1/2``, ``b = S^1/2 V^T``."""

    a: torch.Tensor  # (Cout, r)
    b: torch.Tensor  # (r, Cin)

    @property
    def rank(self) -> int:
        return self.a.shape[1]

    def reconstruct(self) -> torch.Tensor:
        """The dense ``(Cout, Cin)`` matrix."""
        return self.a @ self.b


@dataclass(frozen=True)
class CPFactors:
    """``W[o, c, s...] ~= sum_r out[o, r] inp[c, r] prod_m spatial[m][s_m, r]`` (no separate lambda vector).

    CP3 has one spatial factor of shape ``(kh*kw, R)`` (the flattened kernel window, row-major);
    CP4 has two, ``(kh, R)`` and ``(kw, R)``.
    """

    out: torch.Tensor  # (Cout, R)
    inp: torch.Tensor  # (Cin, R)
    spatial: tuple[torch.Tensor, ...]  # CP3: ((kh*kw, R),)  CP4: ((kh, R), (kw, R))

    @property
    def rank(self) -> int:
        return self.out.shape[1]

    def reconstruct(self, kernel_size: tuple[int, int]) -> torch.Tensor:
        """The dense kernel ``(Cout, Cin, kh, kw)``."""
        kh, kw = kernel_size
        if len(self.spatial) == 1:
            sp = self.spatial[0]  # (kh*kw, R)
        elif len(self.spatial) == 2:
            sp = torch.einsum("ir,jr->ijr", self.spatial[0], self.spatial[1]).reshape(kh * kw, -1)
        else:
            raise ValueError(f"CPFactors needs 1 (CP3) or 2 (CP4) spatial factors, got {len(self.spatial)}")
        w = torch.einsum("or,cr,sr->ocs", self.out, self.inp, sp)  # (Cout, Cin, kh*kw)
        return w.reshape(self.out.shape[0], self.inp.shape[0], kh, kw)
