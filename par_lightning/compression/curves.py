"""Score curves: what the rank search measured for one layer, the input of every rank-selection rule.

Plain data (JSON-serialisable through ``dataclasses.asdict``) so selection rules are pure functions
over numbers, testable without a model, and a search can be saved and re-selected under another rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Method = Literal["svd", "cp3", "cp4"]


@dataclass(frozen=True)
class Candidate:
    """One scored rank of one layer."""

    rank: int
    score: float  # raw alignment score s(r) = cos(G, J J^T G_hat)
    params: int  # weight params of the factorized layer (bias excluded)
    macs: int  # multiply-accumulates per sample of the factorized layer
    rel_error: float | None = None  # ||W - W_hat|| / ||W||
    kappa: float | None = None  # CP cancellation ratio after EPC (None for SVD)


@dataclass(frozen=True)
class LayerCurve:
    """All candidates scored for one layer, plus the dense layer's cost and the reference rank."""

    name: str  # qualified module name in the model (``model.named_modules()``)
    method: Method
    ref_rank: int  # parameter-neutral rank R_max(rho=1); scores are normalised by s(ref_rank)
    dense_params: int
    dense_macs: int
    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    def candidate(self, rank: int) -> Candidate:
        for c in self.candidates:
            if c.rank == rank:
                return c
        raise KeyError(
            f"layer {self.name!r} has no scored rank {rank}; scored: {[c.rank for c in self.candidates]}"
        )

    @property
    def ref_score(self) -> float:
        return self.candidate(self.ref_rank).score
