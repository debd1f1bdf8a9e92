import math

import pytest
import torch

from srtk.losses.gradient import GradientAdversarialInputs, GradientBranchPixelLoss, GradientPixelLoss
from srtk.models.gradient import GRADIENT_EPS, GradientMap


def test_gradient_pixel_loss_of_identical_images_is_zero() -> None:
    img = torch.rand(2, 3, 16, 16)
    assert GradientPixelLoss()(img, img.clone()).item() == 0.0


def test_gradient_pixel_loss_of_ramp_against_flat() -> None:
    # One row, +0.1 per column: with zero padding the central differences are [0.1, 0.2, 0.2, -0.2]
    # along x and 0 along y (the rows above and below are both padding).
    ramp = torch.tensor([0.0, 0.1, 0.2, 0.3]).view(1, 1, 1, 4).repeat(1, 3, 1, 1)
    flat = torch.zeros_like(ramp)
    floor = math.sqrt(GRADIENT_EPS)  # M of a flat region
    expected = sum(math.sqrt(d * d + GRADIENT_EPS) - floor for d in (0.1, 0.2, 0.2, 0.2)) / 4
    loss = GradientPixelLoss()(flat, ramp)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx(0.175 - floor, abs=1e-4)  # the eps barely moves it


def test_gradient_branch_loss_known_values() -> None:
    hr = torch.rand(1, 3, 8, 8)
    loss = GradientBranchPixelLoss()
    assert loss(GradientMap()(hr), hr).item() == 0.0
    # a flat HR has M = sqrt(eps) everywhere; a zero branch output misses it by exactly that
    assert loss(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)).item() == pytest.approx(math.sqrt(GRADIENT_EPS))


def test_gradient_losses_reach_the_generator_only() -> None:
    sr = torch.rand(1, 3, 8, 8, requires_grad=True)
    branch = torch.rand(1, 3, 8, 8, requires_grad=True)
    hr = torch.rand(1, 3, 8, 8, requires_grad=True)
    (GradientPixelLoss()(sr, hr) + GradientBranchPixelLoss()(branch, hr)).backward()
    for tensor in (sr, branch):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    assert hr.grad is None  # HR maps are targets


def test_adversarial_inputs_are_the_two_gradient_maps() -> None:
    sr = torch.rand(2, 3, 8, 8, requires_grad=True)
    hr = torch.rand(2, 3, 8, 8)
    pair = GradientAdversarialInputs()(sr, hr)
    gradient_map = GradientMap()
    torch.testing.assert_close(pair.sr, gradient_map(sr))
    torch.testing.assert_close(pair.hr, gradient_map(hr))
    assert not pair.hr.requires_grad
    pair.sr.sum().backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0


def test_channels_last_and_bfloat16_autocast_agree_with_fp32() -> None:
    sr, hr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    loss = GradientPixelLoss()
    expected = loss(sr, hr)
    channels_last = loss(sr.to(memory_format=torch.channels_last), hr.to(memory_format=torch.channels_last))
    torch.testing.assert_close(channels_last, expected)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_precision = loss(sr, hr)
    torch.testing.assert_close(low_precision.float(), expected, rtol=2e-2, atol=2e-3)
