"""Cached evaluation batches, PAR metrics of a bare network, and exact parameter/MAC counts of a plan.

Validation and test images go through the deterministic evaluation transform, so they are decoded
once and kept as tensors: the accuracy bisection evaluates the validation split hundreds of times.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from par_lightning.compression import count_module_costs
from par_lightning.compression.bn_recalibration import recalibrate_batchnorm
from par_lightning.compression.costs import dense_params, factorized_macs, factorized_params, input_sizes
from par_lightning.compression.plan import CompressionPlan
from par_lightning.metrics import PARMetrics
from par_lightning.module import merge_outputs

Batch = tuple[torch.Tensor, torch.Tensor]


def cache_batches(
    batches: Iterable[Batch | None], device: torch.device, limit: int | None = None
) -> list[Batch]:
    """The loader's batches as tensors on ``device`` (at most ``limit``; ``None`` batches skipped)."""
    out: list[Batch] = []
    for batch in batches:
        if batch is None:
            continue
        out.append((batch[0].to(device), batch[1].to(device)))
        if limit is not None and len(out) == limit:
            break
    return out


@dataclass(frozen=True)
class Evaluator:
    """Metrics of a bare network (``module.model``) on cached batches, in the module's memory format."""

    memory_format: torch.memory_format
    num_eval: int
    threshold: float = 0.5

    def probs(self, net: nn.Module, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(merge_outputs(net(images.contiguous(memory_format=self.memory_format))))

    @torch.no_grad()
    def metrics(self, net: nn.Module, batches: Sequence[Batch]) -> dict[str, float]:
        """mA, F1 (instance-based, as ``PARMetrics``) and mean label accuracy (LW-ALM's bisection score)."""
        was_training = net.training
        net.eval()
        device = batches[0][0].device
        metric = PARMetrics(self.num_eval, threshold=self.threshold, sync_on_compute=False).to(device)
        correct = torch.zeros(self.num_eval, dtype=torch.float64, device=device)
        count = 0
        for images, targets in batches:
            p = self.probs(net, images)[:, : self.num_eval]  # (B, K)
            t = targets[:, : self.num_eval]  # (B, K)
            metric.update(p, t)
            correct += ((p > self.threshold).long() == t).sum(0).double()
            count += t.shape[0]
        net.train(was_training)
        result = metric.compute()
        return {
            "mA": float(result["mA"]),
            "f1": float(result["f1"]),
            "label_acc": float((correct / max(count, 1)).mean()),
        }

    def recalibrate(self, net: nn.Module, batches: Sequence[Batch]) -> None:
        """BN statistics re-estimated on ``batches`` (new factor layers put in the module's memory format)."""
        net.to(memory_format=self.memory_format)
        recalibrate_batchnorm(
            net, batches, forward=lambda m, b: m(b[0].contiguous(memory_format=self.memory_format))
        )


class PlanCosts:
    """Whole-network (params, conv/linear MACs per image) of ``net`` with a plan applied, without applying it.

    From the dense counts and each planned layer's factorized cost (``costs.factorized_*``, the formulas
    the rank search uses): one forward at construction, then arithmetic, so the budget-matching searches
    (dozens of plans) cost nothing; a forward per plan would build new conv kernels every time. The
    benchmark checks the count against the applied model (:func:`network_costs`).
    """

    def __init__(self, net: nn.Module, example: torch.Tensor) -> None:
        self.net = net
        self.params, self.macs = network_costs(net, example)
        self.sizes = input_sizes(net, example)
        self.layer_macs = {name: macs for name, (_, macs) in count_module_costs(net, example).items()}

    def __call__(self, plan: CompressionPlan) -> tuple[int, int]:
        params, macs = self.params, self.macs
        for name, lp in plan.layers.items():
            layer = self.net.get_submodule(name)
            assert isinstance(layer, (nn.Conv2d, nn.Linear))
            params += factorized_params(layer, lp.method, lp.rank) - dense_params(layer)
            macs += factorized_macs(layer, lp.method, lp.rank, self.sizes.get(name)) - self.layer_macs[name]
        return params, macs


def network_costs(net: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    """(params, conv/linear MACs per image) of ``net`` as it is."""
    return sum(p.numel() for p in net.parameters()), sum(
        m for _, m in count_module_costs(net, example).values()
    )
