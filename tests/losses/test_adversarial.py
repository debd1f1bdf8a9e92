import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.losses.adversarial import (
    HingeGANLoss,
    RelativisticAverageGANLoss,
    UNetDiscriminatorLoss,
    UNetLogits,
    VanillaGANLoss,
    cutmix,
    cutmix_mask,
    feature_matching_loss,
)

LOG_TWO = math.log(2.0)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def test_vanilla_with_undecided_discriminator_costs_log_two_per_term() -> None:
    zeros = torch.zeros(4, 1)
    loss = VanillaGANLoss()
    assert loss.discriminator_loss(zeros, zeros).item() == pytest.approx(2 * LOG_TWO)
    assert loss.generator_loss(zeros).item() == pytest.approx(LOG_TWO)


def test_vanilla_with_confident_discriminator() -> None:
    real, fake = torch.full((4, 1), 3.0), torch.full((4, 1), -3.0)
    loss = VanillaGANLoss()
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(2 * softplus(-3.0), rel=1e-5)
    assert loss.generator_loss(fake).item() == pytest.approx(softplus(3.0), rel=1e-6)


@pytest.mark.parametrize("level", [-3.0, 0.0, 5.0])
def test_ragan_with_equal_outputs_gives_log_two(level: float) -> None:
    logits = torch.full((6, 1), level)
    loss = RelativisticAverageGANLoss()
    assert loss.discriminator_loss(logits, logits.clone()).item() == pytest.approx(LOG_TWO)
    assert loss.generator_loss(logits.clone(), logits).item() == pytest.approx(LOG_TWO)


def test_ragan_known_margin() -> None:
    real, fake = torch.full((2, 1), 2.0), torch.zeros(2, 1)
    loss = RelativisticAverageGANLoss()
    # D: both relative logits are judged right with margin 2 -> softplus(-2) each, averaged.
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(softplus(-2.0))
    # G: both are judged wrong with margin 2 -> softplus(2) each, averaged.
    assert loss.generator_loss(fake, real).item() == pytest.approx(softplus(2.0))


def test_ragan_generator_needs_real_logits() -> None:
    with pytest.raises(ValueError, match="real_logits"):
        RelativisticAverageGANLoss().generator_loss(torch.zeros(2, 1))


def test_ragan_generator_gradient_reaches_both_sides() -> None:
    real = torch.randn(4, 1, requires_grad=True)
    fake = torch.randn(4, 1, requires_grad=True)
    RelativisticAverageGANLoss().generator_loss(fake, real).backward()
    assert fake.grad is not None and real.grad is not None
    assert fake.grad.abs().sum() > 0 and real.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("real", "fake", "expected"),
    [(2.0, -2.0, 0.0), (0.0, 0.0, 2.0), (0.5, 0.25, 0.5 + 1.25), (1.0, -1.0, 0.0), (-1.0, 1.0, 4.0)],
)
def test_hinge_margins(real: float, fake: float, expected: float) -> None:
    loss = HingeGANLoss().discriminator_loss(torch.full((3, 1, 4, 4), real), torch.full((3, 1, 4, 4), fake))
    assert loss.item() == pytest.approx(expected)


def test_hinge_generator_is_minus_mean_logit() -> None:
    fake = torch.tensor([[0.5], [-1.5]], requires_grad=True)
    loss = HingeGANLoss().generator_loss(fake)
    loss.backward()
    assert loss.item() == pytest.approx(0.5)
    torch.testing.assert_close(fake.grad, torch.full((2, 1), -0.5))


class PointwiseDiscriminator(nn.Module):
    """A 1x1 conv: every pixel's logit sees only that pixel, so CutMix commutes with it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, img: Tensor) -> UNetLogits:
        pixel = self.conv(img)
        return UNetLogits(global_logit=pixel.mean((2, 3)), pixel_logits=pixel)


class TinyUNetDiscriminator(nn.Module):
    """Spatial context (3x3 convs) plus a separate global head: CutMix does not commute with it."""

    def __init__(self, num_features: int = 8) -> None:
        super().__init__()
        self.body = nn.Conv2d(3, num_features, 3, padding=1)
        self.global_head = nn.Linear(num_features, 1)
        self.pixel_head = nn.Conv2d(num_features, 1, 3, padding=1)

    def forward(self, img: Tensor) -> UNetLogits:
        feats = F.leaky_relu(self.body(img), 0.2)
        return UNetLogits(self.global_head(feats.mean((2, 3))), self.pixel_head(feats))


def test_consistency_is_zero_for_a_pointwise_discriminator() -> None:
    real, fake = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    terms = UNetDiscriminatorLoss().discriminator_loss(PointwiseDiscriminator(), real, fake)
    assert terms.consistency.item() == pytest.approx(0.0, abs=1e-12)
    torch.testing.assert_close(terms.total, terms.encoder + terms.decoder)


def test_consistency_is_positive_for_a_discriminator_with_context() -> None:
    real, fake = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    terms = UNetDiscriminatorLoss().discriminator_loss(
        TinyUNetDiscriminator(), real, fake, generator=torch.Generator().manual_seed(1)
    )
    assert terms.consistency.item() > 1e-6


def test_unet_losses_with_an_undecided_discriminator() -> None:
    def undecided(img: Tensor) -> UNetLogits:
        return UNetLogits(img.new_zeros(img.shape[0], 1), img.new_zeros(img.shape[0], 1, *img.shape[2:]))

    real, fake = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    loss = UNetDiscriminatorLoss()
    terms = loss.discriminator_loss(undecided, real, fake)
    # hinge at logit 0: 1 for the real term plus 1 for the fake term, on each head (eq. 2-3)
    assert (terms.encoder.item(), terms.decoder.item(), terms.consistency.item()) == (2.0, 2.0, 0.0)
    assert terms.total.item() == 4.0
    fake_out = UNetLogits(torch.full((2, 1), 0.5), torch.full((2, 1, 8, 8), 0.25))
    assert loss.generator_loss(fake_out).item() == pytest.approx(-0.75)  # eq. 4


def test_unet_discriminator_loss_trains_every_parameter_and_never_the_generator() -> None:
    disc = TinyUNetDiscriminator()
    real = torch.rand(2, 3, 16, 16)
    fake = torch.rand(2, 3, 16, 16, requires_grad=True)
    terms = UNetDiscriminatorLoss().discriminator_loss(disc, real, fake)
    terms.total.backward()
    assert torch.isfinite(terms.total)
    for name, param in disc.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        # a head's bias moves real and fake logits alike: inside the hinge margins its gradient is exactly 0
        if name.endswith("weight"):
            assert param.grad.abs().sum() > 0, name
    assert fake.grad is None


def test_unet_generator_loss_reaches_the_generator() -> None:
    disc = TinyUNetDiscriminator()
    fake = torch.rand(2, 3, 16, 16, requires_grad=True)
    UNetDiscriminatorLoss().generator_loss(disc(fake)).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_consistency_weight_zero_skips_the_term() -> None:
    real, fake = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    terms = UNetDiscriminatorLoss(consistency_weight=0.0).discriminator_loss(TinyUNetDiscriminator(), real, fake)
    assert terms.consistency.item() == 0.0
    torch.testing.assert_close(terms.total, terms.encoder + terms.decoder)


def test_cutmix_masks_are_boxes_of_both_kinds() -> None:
    masks = cutmix_mask(64, 16, 12, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (64, 1, 16, 12)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    real_boxes = fake_boxes = 0
    for mask in masks[:, 0]:
        # whichever value is the minority (or, on ties, either) must fill an axis-aligned rectangle
        for value in (0.0, 1.0):
            rows, cols = torch.nonzero(mask == value, as_tuple=True)
            if rows.numel() == 0:
                continue
            height = int(rows.max() - rows.min()) + 1
            width = int(cols.max() - cols.min()) + 1
            if height * width == rows.numel():
                real_boxes += value == 1.0
                fake_boxes += value == 0.0
    assert real_boxes > 10 and fake_boxes > 10
    # uniform box areas, half of them inverted: on average half of each image is real
    assert masks.mean().item() == pytest.approx(0.5, abs=0.1)


def test_cutmix_masks_are_reproducible_with_a_generator() -> None:
    first = cutmix_mask(4, 8, 8, generator=torch.Generator().manual_seed(3))
    second = cutmix_mask(4, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(first, second)


def test_cutmix_takes_real_where_the_mask_is_one() -> None:
    real, fake = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    torch.testing.assert_close(cutmix(real, fake, mask), mask.expand(1, 3, 2, 2))


def test_feature_matching_known_value_and_gradient() -> None:
    fake = [torch.full((2, 4, 4, 4), 0.5, requires_grad=True), torch.ones(2, 8, 2, 2, requires_grad=True)]
    real = [torch.zeros(2, 4, 4, 4, requires_grad=True), torch.full((2, 8, 2, 2), 0.5, requires_grad=True)]
    loss = feature_matching_loss(fake, real)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)  # 0.5 per block, summed over blocks
    assert all(f.grad is not None for f in fake)
    assert all(r.grad is None for r in real)  # HR features are targets


def test_feature_matching_rejects_mismatched_lists() -> None:
    with pytest.raises(ValueError, match="equal"):
        feature_matching_loss([torch.zeros(1)], [])
