import math

import pytest
import torch

from srtk.losses.gg import MULTI_SCALE_WEIGHT, SR_GRADIENT_WEIGHT, GradientGuidedLoss
from srtk.models.gradient import GRADIENT_EPS, GradientMap

FLOOR = math.sqrt(GRADIENT_EPS)  # M of a flat region


def flat_image_gradient_mean(value: float, size: int) -> float:
    """Mean of |M(flat image) - FLOOR| on a size x size image: zero padding makes the border an edge."""
    corner = math.sqrt(2 * value * value + GRADIENT_EPS) - FLOOR  # x and y both see the padding
    edge = math.sqrt(value * value + GRADIENT_EPS) - FLOOR
    return (4 * corner + 4 * (size - 2) * edge) / (size * size)


def test_paper_weights() -> None:
    assert (MULTI_SCALE_WEIGHT, SR_GRADIENT_WEIGHT) == (0.1, 0.001)  # GPSR sec. 3.2.2


def test_gg_loss_known_value_on_a_toy_input() -> None:
    hr = torch.zeros(1, 3, 4, 4)
    sr = torch.full((1, 3, 4, 4), 0.25)
    predictions = [torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 4, 4), 0.5)]  # x4: N = 2 scales
    terms = GradientGuidedLoss()(sr, hr, predictions)
    assert terms.pixel.item() == pytest.approx(0.25)  # eq. 18
    assert terms.multi_scale.item() == pytest.approx(2 * (0.5 - FLOOR), rel=1e-6)  # eq. 14: summed over s
    assert terms.sr_gradient.item() == pytest.approx(flat_image_gradient_mean(0.25, 4), rel=1e-5)  # eq. 15
    expected_gg = 0.1 * 2 * (0.5 - FLOOR) + 0.001 * flat_image_gradient_mean(0.25, 4)
    assert terms.gradient_guided.item() == pytest.approx(expected_gg, rel=1e-5)  # eq. 16
    assert terms.total.item() == pytest.approx(0.25 + expected_gg, rel=1e-5)  # eq. 17


def test_pixel_weight_zero_leaves_the_gg_loss_alone() -> None:
    hr, sr = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    terms = GradientGuidedLoss(pixel_weight=0.0)(sr, hr, [torch.rand(1, 3, 4, 4)])
    torch.testing.assert_close(terms.total, terms.gradient_guided)


def test_perfect_predictions_cost_nothing() -> None:
    hr = torch.rand(2, 3, 16, 16)
    loss = GradientGuidedLoss()
    targets = loss.targets(hr, [(4, 4), (8, 8), (16, 16)])  # x8: N = 3 scales
    terms = loss(hr.clone(), hr, targets)
    assert terms.total.item() == 0.0


def test_targets_are_gradients_of_the_bicubic_downscaled_hr() -> None:
    # A flat HR stays flat under (weight-normalised) bicubic downscaling, so each target is the
    # flat-image pattern of its own size: only the border, which sees the zero padding, is an edge.
    hr = torch.full((1, 3, 16, 16), 0.5)
    targets = GradientGuidedLoss().targets(hr, [(4, 4), (8, 8), (16, 16)])
    for target, size in zip(targets, (4, 8, 16), strict=True):
        assert target.shape == (1, 3, size, size)
        mean_above_floor = (target - FLOOR).mean().item()
        assert mean_above_floor == pytest.approx(flat_image_gradient_mean(0.5, size), rel=1e-4)
    torch.testing.assert_close(targets[-1], GradientMap()(hr))


def test_gradient_reaches_sr_and_every_prediction() -> None:
    hr = torch.rand(1, 3, 8, 8)
    sr = torch.rand(1, 3, 8, 8, requires_grad=True)
    predictions = [torch.rand(1, 3, 4, 4, requires_grad=True), torch.rand(1, 3, 8, 8, requires_grad=True)]
    terms = GradientGuidedLoss()(sr, hr, predictions)
    terms.total.backward()
    assert torch.isfinite(terms.total)
    for tensor in (sr, *predictions):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


@pytest.mark.parametrize("shape", [(1, 3, 3, 3), (1, 3, 4, 2), (1, 1, 4, 4)])
def test_mismatched_predictions_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError):
        GradientGuidedLoss()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), [torch.rand(shape)])


def test_no_predictions_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        GradientGuidedLoss()(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8), [])
