"""Compression plans (JSON round trip, atomic save, apply to a model) and layer targeting rules."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from par_lightning.compression.plan import CompressionPlan, LayerPlan, PlanError, apply_plan
from par_lightning.compression.targets import select_layers

CP_FAST = {"als_iters": 30, "epc_sweeps": 5, "seed": 0}


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.conv1 = nn.Conv2d(16, 12, 1)
        self.bn = nn.BatchNorm2d(12)
        self.fc = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv3(torch.relu(self.stem(x))))  # (B, 16, H/2, W/2)
        x = torch.relu(self.bn(self.conv1(x)))  # (B, 12, H/2, W/2)
        return self.fc(x.mean((2, 3)))  # (B, 5)


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(10, 10)
        self.b = self.a  # the same object under a second name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


def small_plan() -> CompressionPlan:
    return CompressionPlan(
        {
            "conv3": LayerPlan("cp3", 6, {6: 0.9, 12: 1.0}, {"note": "x"}, weight_shape=(16, 8, 3, 3)),
            "conv1": LayerPlan("svd", 4),
            "fc": LayerPlan("svd", 3),
        },
        {"rule": "threshold", "tau": 0.9},
    )


def test_json_round_trip_keeps_int_score_keys() -> None:
    plan = small_plan()
    text = plan.to_json()
    assert json.loads(text)["layers"]["conv3"]["scores"] == {"6": 0.9, "12": 1.0}
    back = CompressionPlan.from_json(text)
    assert back == plan
    assert list(back.layers["conv3"].scores) == [6, 12]
    assert back.layers["conv3"].weight_shape == (16, 8, 3, 3)


def test_validation_errors_name_the_field() -> None:
    with pytest.raises(PlanError, match="LayerPlan.method"):
        LayerPlan("tucker", 3)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="LayerPlan.rank"):
        LayerPlan("svd", 0)
    with pytest.raises(PlanError, match="LayerPlan.scores"):
        LayerPlan("svd", 2, {"2": 0.5})  # type: ignore[dict-item]
    with pytest.raises(PlanError, match=r"layers\['x'\] must be a LayerPlan"):
        CompressionPlan({"x": ("svd", 2)})  # type: ignore[dict-item]
    d = small_plan().to_dict()
    d["layers"]["fc"]["rnak"] = 3
    with pytest.raises(PlanError, match=r"layers\['fc'\].*unknown fields \['rnak'\]"):
        CompressionPlan.from_dict(d)
    d = small_plan().to_dict()
    d["layers"]["conv3"]["scores"] = {"six": 0.9}
    with pytest.raises(PlanError, match="scores keys"):
        CompressionPlan.from_dict(d)
    d = small_plan().to_dict()
    del d["version"]
    with pytest.raises(PlanError, match=r"missing fields \['version'\]"):
        CompressionPlan.from_dict(d)


def test_save_load_atomic(tmp_path) -> None:
    path = tmp_path / "plan.json"
    small_plan().save(path)
    CompressionPlan({"fc": LayerPlan("svd", 2)}).save(path)  # overwrite
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]
    assert CompressionPlan.load(path) == CompressionPlan({"fc": LayerPlan("svd", 2)})
    bad = CompressionPlan({"fc": LayerPlan("svd", 2)}, {"obj": object()})
    with pytest.raises(PlanError, match="JSON"):
        bad.save(tmp_path / "bad.json")
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PlanError, match="broken.json"):
        CompressionPlan.load(tmp_path / "broken.json")


def test_apply_plan_same_on_copy_and_checkpoint_loads_into_fresh_model() -> None:
    torch.manual_seed(0)
    model = SmallCNN().eval()
    fresh = copy.deepcopy(model)
    fresh_for_load = SmallCNN().eval()  # other random weights: everything must come from the state dict
    x = torch.randn(2, 3, 8, 8)
    plan = small_plan()

    apply_plan(model, plan, cp_kwargs=CP_FAST)
    apply_plan(fresh, plan, cp_kwargs=CP_FAST)
    assert isinstance(model.conv3, nn.Sequential) and model.conv3[0].out_channels == 6
    assert model.conv1[0].out_channels == 4 and model.fc[0].out_features == 3
    assert isinstance(model.stem, nn.Conv2d)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))

    apply_plan(fresh_for_load, CompressionPlan.from_json(plan.to_json()), decompose=False)
    fresh_for_load.load_state_dict(model.state_dict())  # strict: same keys and shapes
    with torch.no_grad():
        assert torch.equal(model(x), fresh_for_load(x))


def test_exact_rank_plan_matches_dense_model() -> None:
    torch.manual_seed(1)
    model = SmallCNN().double().eval()
    with torch.no_grad():  # an exactly rank-1 kernel: CP3 at rank 1 is exact
        model.conv3.weight.copy_(
            torch.einsum("o,c,s->ocs", torch.randn(16), torch.randn(8), torch.randn(9)).view(16, 8, 3, 3)
        )
    dense = copy.deepcopy(model)
    plan = {"conv3": LayerPlan("cp3", 1), "conv1": LayerPlan("svd", 12), "fc": LayerPlan("svd", 5)}
    apply_plan(model, CompressionPlan(plan), cp_kwargs=CP_FAST)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), dense(x), rtol=1e-5, atol=1e-6)  # ALS stops at its tolerance


def test_shared_module_replaced_once_everywhere() -> None:
    model = Shared()
    x = torch.randn(3, 10)
    apply_plan(model, CompressionPlan({"b": LayerPlan("svd", 10)}))
    assert isinstance(model.a, nn.Sequential) and model.a is model.b
    assert len(list(model.parameters())) == 3  # two factor weights + one bias, shared
    with pytest.raises(PlanError, match="same module"):
        apply_plan(Shared(), CompressionPlan({"a": LayerPlan("svd", 4), "b": LayerPlan("svd", 5)}))
    model2 = Shared()
    apply_plan(model2, CompressionPlan({"a": LayerPlan("svd", 4), "b": LayerPlan("svd", 4)}))
    assert model2.a is model2.b and model2(x).shape == (3, 10)


def test_apply_plan_errors_leave_model_untouched() -> None:
    model = SmallCNN()
    with pytest.raises(PlanError, match=r"'conv33'.*close names: \['conv3'"):
        apply_plan(model, CompressionPlan({"conv33": LayerPlan("cp3", 4)}))
    with pytest.raises(PlanError, match="BatchNorm2d is not nn.Conv2d or nn.Linear"):
        apply_plan(model, CompressionPlan({"bn": LayerPlan("svd", 4)}))
    with pytest.raises(PlanError, match="'svd' needs a 1x1 conv"):
        apply_plan(model, CompressionPlan({"conv3": LayerPlan("svd", 4)}))
    with pytest.raises(PlanError, match="needs a kxk conv"):
        apply_plan(model, CompressionPlan({"conv1": LayerPlan("cp3", 4)}))
    with pytest.raises(PlanError, match="needs a kxk conv"):
        apply_plan(model, CompressionPlan({"fc": LayerPlan("cp4", 4)}))
    with pytest.raises(PlanError, match="exceeds min"):
        apply_plan(model, CompressionPlan({"fc": LayerPlan("svd", 6)}))
    with pytest.raises(PlanError, match=r"weight shape \(16, 8, 3, 3\), the plan expects \(16, 4, 3, 3\)"):
        apply_plan(model, CompressionPlan({"conv3": LayerPlan("cp3", 4, weight_shape=(16, 4, 3, 3))}))
    # a valid first entry is not applied when a later one fails
    with pytest.raises(PlanError):
        apply_plan(model, CompressionPlan({"fc": LayerPlan("svd", 2), "bn": LayerPlan("svd", 2)}))
    assert isinstance(model.fc, nn.Linear)
    apply_plan(model, CompressionPlan({"fc": LayerPlan("svd", 2)}))
    with pytest.raises(PlanError, match="already factorized"):
        apply_plan(model, CompressionPlan({"fc": LayerPlan("svd", 2)}))


def test_apply_plan_keeps_frozen_layers_frozen_and_cp4_on_1xk_refused() -> None:
    model = SmallCNN()
    model.conv1.requires_grad_(False)
    apply_plan(model, CompressionPlan({"conv1": LayerPlan("svd", 2)}), decompose=False)
    assert not any(p.requires_grad for p in model.conv1.parameters())
    wide = nn.Sequential(nn.Conv2d(8, 8, (1, 7), padding=(0, 3)))
    with pytest.raises(PlanError, match="size-1 spatial factor; use 'cp3'"):
        apply_plan(wide, CompressionPlan({"0": LayerPlan("cp4", 4)}))


class Zoo(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 64, 3)
        self.body = nn.ModuleDict(
            {
                "c3": nn.Conv2d(64, 64, 3),  # 36864 weights -> cp3
                "c1": nn.Conv2d(64, 128, 1),  # 8192 -> svd
                "dw": nn.Conv2d(64, 64, 3, groups=64),
                "gr": nn.Conv2d(64, 64, 3, groups=2),
                "tiny": nn.Conv2d(16, 16, 3),  # 2304 < 4096
                "up": nn.ConvTranspose2d(64, 64, 3),
                "wide": nn.Conv2d(64, 64, (1, 7)),
            }
        )
        self.head = nn.Linear(128, 64)
        self.alias = self.head  # shared: listed once, under its first name
        self.thin = nn.Linear(8192, 1)  # 8192 weights but parameter-neutral rank 0


def test_select_layers_rules_and_reasons() -> None:
    targets, skipped = select_layers(Zoo())
    assert targets == {"body.c3": "cp3", "body.c1": "svd", "body.wide": "cp3", "head": "svd"}
    assert "stem" in skipped["stem"]
    assert "depthwise" in skipped["body.dw"] and "grouped" in skipped["body.gr"]
    assert "tiny" in skipped["body.tiny"] and "transposed" in skipped["body.up"]
    assert "rank" in skipped["thin"]
    assert "alias" not in targets and "alias" not in skipped

    targets, skipped = select_layers(
        Zoo(), include=("body.*",), exclude=("*.c1",), skip_stem=False, cp_method="cp4"
    )
    assert targets == {"body.c3": "cp4", "body.wide": "cp3"}
    assert "include" in skipped["stem"] and "include" in skipped["head"]
    assert "'*.c1'" in skipped["body.c1"]

    targets, skipped = select_layers(Zoo(), types=(nn.Conv2d,), min_params=1000, skip_stem=False)
    assert "stem" in targets and "body.tiny" in targets
    assert "not in types" in skipped["head"]
    # a shared module excluded under any of its names is skipped
    assert "head" not in select_layers(Zoo(), exclude=("alias",)).targets
