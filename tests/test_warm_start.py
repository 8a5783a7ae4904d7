"""Warm-started CP ranks in the search: the strongest components of the rank above seed ALS below."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import par_lightning.compression.search as search_mod
from par_lightning.compression import CPFactors, SearchOptions, cp_decompose, score_layers, top_components

pytestmark = pytest.mark.usefixtures("one_thread")


def _factors(rank: int, seed: int, spatial: tuple[int, ...] = (9,)) -> CPFactors:
    gen = torch.Generator().manual_seed(seed)
    draw = lambda n: torch.randn(n, rank, generator=gen, dtype=torch.float64)  # noqa: E731
    return CPFactors(draw(6), draw(5), tuple(draw(s) for s in spatial))


def _term(f: CPFactors, r: int) -> torch.Tensor:
    """Rank-1 term r as a dense (6, 5, 9) tensor, built independently of the code under test."""
    return f.out[:, r, None, None] * f.inp[None, :, r, None] * f.spatial[0][None, None, :, r]


def test_top_components_keeps_the_largest_terms_exactly() -> None:
    f = _factors(7, seed=0)
    norms = [float(_term(f, r).norm()) for r in range(7)]
    top = sorted(range(7), key=lambda r: -norms[r])[:3]
    out, inp, sp = top_components(f, 3, "cp3")
    got = torch.einsum("or,cr,sr->ocs", out, inp, sp)
    want = sum(_term(f, r) for r in top)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # balanced: every mode's column r has the same norm
    n = torch.stack([out.norm(dim=0), inp.norm(dim=0), sp.norm(dim=0)])
    torch.testing.assert_close(n, n[:1].expand_as(n), rtol=1e-12, atol=0)


def test_top_components_refuses_a_smaller_model_or_the_wrong_method() -> None:
    f = _factors(4, seed=1)
    with pytest.raises(ValueError, match="must be larger"):
        top_components(f, 5, "cp3")
    with pytest.raises(ValueError, match="not a cp4 model"):
        top_components(f, 2, "cp4")


def test_warm_start_recovers_an_exact_low_rank_kernel() -> None:
    """A rank-3 kernel, decomposed at rank 5 and then warm-started at rank 3: the fit is exact."""
    exact = _factors(3, seed=2)
    w = torch.einsum("or,cr,sr->ocs", exact.out, exact.inp, exact.spatial[0]).reshape(6, 5, 3, 3)
    big, _ = cp_decompose(w, 5, "cp3", als_iters=300, epc_sweeps=0, seed=0)
    small, diag = cp_decompose(w, 3, "cp3", als_iters=300, epc_sweeps=0, init=big)
    assert diag.rel_error < 1e-6


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 12, 3, padding=1)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def test_search_warm_starts_each_lower_cp_rank_from_the_rank_above(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int | None, int]] = []
    real = search_mod.cp_decompose

    def spy(weight, rank, method, *, init=None, als_iters, **kw):  # type: ignore[no-untyped-def]
        calls.append((rank, None if init is None else init.rank, als_iters))
        return real(weight, rank, method, init=init, als_iters=als_iters, **kw)

    monkeypatch.setattr(search_mod, "cp_decompose", spy)
    torch.manual_seed(0)
    model = _Net().double()
    batches = [
        (torch.randn(4, 8, 6, 6, dtype=torch.float64), torch.rand(4, 3, dtype=torch.float64))
        for _ in range(2)
    ]

    def loss(m: nn.Module, b: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.mse_loss(m(b[0]), b[1])

    opts = SearchOptions(grid_steps=3, stop_below=None, als_iters=20, epc_sweeps=2, warm_als_iters=7)
    score_layers(model, loss, batches, {"conv": "cp3"}, batches[0][0], opts)
    ranks = [c[0] for c in calls]
    assert ranks == sorted(ranks, reverse=True) and len(ranks) == 3
    assert calls[0] == (ranks[0], None, 20)  # the reference rank starts cold with the full effort
    assert calls[1:] == [(ranks[1], ranks[0], 7), (ranks[2], ranks[1], 7)]

    calls.clear()
    score_layers(model, loss, batches, {"conv": "cp3"}, batches[0][0], SearchOptions(
        grid_steps=3, stop_below=None, als_iters=20, epc_sweeps=2, warm_start=False))  # fmt: skip
    assert [c[1] for c in calls] == [None, None, None] and {c[2] for c in calls} == {20}
