"""ALM: box sampling vs grid_sample, batched heads vs the per-attribute loop, pyramid, deep supervision."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from par_lightning.models import create_model
from par_lightning.models.alm import ALM
from par_lightning.models.alm_heads import BatchedALMHead, LoopALMHead
from par_lightning.models.box_sampling import box_corners, box_theta, pooled_box_features, sample_box
from par_lightning.models.pyramid import ConcatPyramid
from par_lightning.module import merge_outputs


def _grid_sample_reference(x: torch.Tensor, box: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Mean of ``grid_sample`` over the box, one box at a time (the reference's route)."""
    return torch.stack([sample_box(x, box[:, n], align_corners).mean((2, 3)) for n in range(box.shape[1])], 1)


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("hw", [(32, 16), (8, 4), (5, 3), (2, 7)])
def test_separable_box_pooling_equals_grid_sample(align_corners: bool, hw: tuple[int, int]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, *hw, dtype=torch.float64, generator=gen)
    box = box_theta(3 * torch.randn(2, 4, 4, dtype=torch.float64, generator=gen))  # some boxes leave the map
    got = pooled_box_features(x, box, align_corners)
    torch.testing.assert_close(got, _grid_sample_reference(x, box, align_corners), rtol=1e-12, atol=1e-12)


def test_separable_box_pooling_gradients_equal_grid_sample() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 6, 4, dtype=torch.float64, generator=gen)
    raw = torch.randn(2, 3, 4, dtype=torch.float64, generator=gen)
    weight = torch.randn(2, 3, 3, dtype=torch.float64, generator=gen)
    grads = []
    for route in (pooled_box_features, _grid_sample_reference):
        xi, ri = x.clone().requires_grad_(), raw.clone().requires_grad_()
        (route(xi, box_theta(ri), True) * weight).sum().backward()
        grads.append((xi.grad, ri.grad))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-8, atol=1e-10)


def _random_loop_head(channels: int, n: int, seed: int) -> LoopALMHead:
    torch.manual_seed(seed)
    head = LoopALMHead(channels, n)
    with torch.no_grad():
        for p in head.parameters():  # weights large enough that boxes move and attention matters
            p.normal_(0.0, 0.2)
    return head


@pytest.mark.parametrize("sampling", ["separable", "grid_sample"])
@pytest.mark.parametrize(("channels", "hw"), [(64, (16, 8)), (32, (4, 2))])
def test_batched_heads_equal_loop(sampling: str, channels: int, hw: tuple[int, int]) -> None:
    loop = _random_loop_head(channels, 7, seed=channels)
    batched = BatchedALMHead.from_loop(loop, sampling)  # type: ignore[arg-type]
    x = torch.randn(3, channels, *hw)
    ref_logits, ref_boxes = loop(x)
    logits, boxes = batched(x)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(boxes, ref_boxes, rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in batched.parameters()) == sum(p.numel() for p in loop.parameters())


def test_batched_heads_backward_equals_loop() -> None:
    loop = _random_loop_head(32, 5, seed=3).double()
    batched = BatchedALMHead.from_loop(loop)
    x = torch.randn(2, 32, 8, 4, dtype=torch.float64)
    grads = []
    for head in (loop, batched):
        xi = x.clone().requires_grad_()
        head(xi)[0].square().sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-10)
    # the first SE conv's gradient, reassembled from the loop's per-attribute convs
    loop_grad = torch.cat([m.se_reduce.weight.grad for m in loop.attributes])
    torch.testing.assert_close(batched.se_reduce.weight.grad, loop_grad, rtol=1e-9, atol=1e-10)


def test_per_attribute_parameter_count_matches_spec() -> None:
    """Spec alm.md 1.3: 78,389 / 35,877 / 9,749 parameters per attribute at 768 / 512 / 256 channels."""
    for channels, expected in ((768, 78_389), (512, 35_877), (256, 9_749)):
        for head in (LoopALMHead(channels, 2), BatchedALMHead(channels, 2)):
            assert sum(p.numel() for p in head.parameters()) == 2 * expected


def test_pyramid_concatenates_upsampled_coarser_levels() -> None:
    pyramid = ConcatPyramid([8, 16, 32], channels=4)
    feats = [torch.randn(1, 8, 16, 8), torch.randn(1, 16, 8, 4), torch.randn(1, 32, 4, 2)]
    p3, p4, p5 = pyramid(feats)
    assert [p.shape[1] for p in (p3, p4, p5)] == pyramid.out_channels == [12, 8, 4]
    torch.testing.assert_close(p5, pyramid.laterals[2](feats[2]))
    up5 = F.interpolate(p5, size=(8, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(p4, torch.cat([up5, pyramid.laterals[1](feats[1])], 1))
    up4 = F.interpolate(p4, size=(16, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(p3, torch.cat([up4, pyramid.laterals[0](feats[0])], 1))


def test_alm_loop_and_batched_models_agree_end_to_end() -> None:
    torch.manual_seed(0)
    loop = ALM(5, backbone="test_resnet", pyramid_channels=16, reduction=4, heads="loop").eval()
    batched = ALM(5, backbone="test_resnet", pyramid_channels=16, reduction=4).eval()
    state = loop.state_dict()
    for i, head in enumerate(loop.heads):
        converted = BatchedALMHead.from_loop(head)  # type: ignore[arg-type]
        state = {k: v for k, v in state.items() if not k.startswith(f"heads.{i}.")}
        state.update({f"heads.{i}.{k}": v for k, v in converted.state_dict().items()})
    batched.load_state_dict(state)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        for a, b in zip(loop(x), batched(x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(loop.localize(x), batched.localize(x), rtol=1e-5, atol=1e-5)


def test_deep_supervision_loss_sums_the_four_heads_and_prediction_max_votes() -> None:
    from par_lightning.module import PARModule

    module = PARModule(arch="alm_tiny", num_attributes=3, loss="bce")
    images = torch.randn(2, 3, 64, 32)
    targets = torch.tensor([[1, 0, 2], [0, 1, 1]])
    outputs = module.model(images)
    assert isinstance(outputs, tuple) and len(outputs) == 4
    mask = targets <= 1
    # "bce": summed over attributes, averaged over the batch, uncertain (2) entries weigh 0
    expected = sum(
        F.binary_cross_entropy_with_logits(o[mask], targets.clamp(max=1)[mask].float(), reduction="sum") / 2
        for o in outputs
    )
    torch.testing.assert_close(module.compute_loss((images, targets)), expected)
    module.eval()
    with torch.no_grad():
        stacked = torch.stack(module.model(images))
        torch.testing.assert_close(module(images), stacked.max(dim=0).values)
    assert torch.equal(merge_outputs(tuple(stacked)), stacked.max(dim=0).values)


def test_localize_returns_boxes_inside_the_image() -> None:
    model = create_model("alm_tiny", num_attributes=4).eval()
    with torch.no_grad():
        boxes = model.localize(torch.randn(2, 3, 64, 32))
    assert boxes.shape == (2, 3, 4, 4)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    # corners follow the box parameters: centre t, half-size s in [-1, 1] coordinates
    torch.testing.assert_close(
        box_corners(torch.tensor([0.5, 0.25, 0.0, 0.5])), torch.tensor([0.25, 0.625, 0.75, 0.875])
    )


def test_alm_rejects_wrong_number_of_levels() -> None:
    with pytest.raises(ValueError, match="3 backbone levels"):
        ALM(3, backbone="test_resnet", out_indices=(3, 4))
    with pytest.raises(ValueError, match="heads must be"):
        ALM(3, backbone="test_resnet", heads="vectorised")  # type: ignore[arg-type]
