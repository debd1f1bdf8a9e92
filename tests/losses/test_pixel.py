import math

import pytest
import torch

from srtk.errors import ConfigError
from srtk.losses.pixel import CHARBONNIER_EPS, PixelLoss


@pytest.mark.parametrize(
    ("criterion", "expected"),
    [
        ("l1", 0.5),
        ("l2", 0.25),
        ("charbonnier", math.sqrt(0.25 + CHARBONNIER_EPS**2)),
    ],
)
def test_pixel_loss_of_two_constants(criterion: str, expected: float) -> None:
    sr, hr = torch.full((2, 3, 4, 4), 0.75), torch.full((2, 3, 4, 4), 0.25)
    loss = PixelLoss(criterion=criterion)(sr, hr)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_pixel_loss_of_identical_images_is_zero() -> None:
    img = torch.rand(1, 3, 8, 8)
    assert PixelLoss()(img, img.clone()).item() == 0.0


def test_l1_gradient_is_sign_over_count() -> None:
    sr = torch.tensor([[[[0.2, 0.8]]]], requires_grad=True)
    hr = torch.tensor([[[[0.5, 0.5]]]])
    PixelLoss()(sr, hr).backward()
    torch.testing.assert_close(sr.grad, torch.tensor([[[[-0.5, 0.5]]]]))


def test_unknown_criterion_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="l1, l2, charbonnier"):
        PixelLoss(criterion="l3")  # type: ignore[arg-type]


def test_channels_last_input_gives_the_same_loss() -> None:
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    loss = PixelLoss(criterion="charbonnier")
    expected = loss(sr, hr)
    actual = loss(sr.to(memory_format=torch.channels_last), hr.to(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected)
