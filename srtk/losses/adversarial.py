"""Adversarial losses: vanilla GAN (SPSR paper 000 sec. 3.3 eq. 5-6, 8-9), relativistic average GAN (RaGAN:
SPSR sec. 3.3 "following [22], [60]", ugsr paper 002 eq. 10-11), hinge, and the ugsr U-Net discriminator
loss (paper 002 sec. 2.3 eq. 2-5: encoder + decoder hinge terms and CutMix consistency regularization) with
discriminator feature matching (sec. 2.4 eq. 7).

The losses take raw discriminator outputs (logits, any shape); the caller detaches what must not train:
the fake image in a discriminator step, nothing in a generator step (the discriminator is frozen there).
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

# ugsr eq. 5 adds L_Dcons to the encoder and decoder terms without a weight.
CONSISTENCY_WEIGHT = 1.0
# CutMix (Yun et al., 2019): the box covers a U(0, 1) fraction of the image.
CUTMIX_AREA_RANGE = (0.0, 1.0)
# Our choice: half of the mixtures paste a real box into a fake image, half a fake box into a real one,
# so the decoder meets both kinds (a fixed orientation would always show real at the border).
CUTMIX_REAL_BOX_PROBABILITY = 0.5


def _bce(logits: Tensor, target: float) -> Tensor:
    """Mean binary cross-entropy of logits against a constant label, numerically stable."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


class AdversarialLoss(ABC):
    """A GAN objective: one loss for the discriminator, one for the generator.

    `real_logits` = D(HR), `fake_logits` = D(SR). Generators of non-relativistic losses ignore `real_logits`.
    """

    @abstractmethod
    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        """Loss minimised by the discriminator."""

    @abstractmethod
    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """Loss minimised by the generator."""


class VanillaGANLoss(AdversarialLoss):
    """The standard GAN with sigmoid outputs (SPSR eq. 5-6); the generator uses the non-saturating form."""

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # eq. 5: -E[log D(HR)] - E[log(1 - D(SR))]
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        # eq. 6: -E[log D(G(LR))]
        return _bce(fake_logits, 1.0)


class RelativisticAverageGANLoss(AdversarialLoss):
    """RaGAN (Jolicoeur-Martineau, 2018) as ESRGAN uses it; SPSR sec. 3.3 and ugsr eq. 10-11 adopt it.

    D_Ra(a, b) = sigmoid(C(a) - E_batch[C(b)]). Both forms average their two terms (halve the sum): the
    loss weights SPSR copies from ESRGAN (gamma = 0.005) were tuned with the ESRGAN training code, which
    averages them; the ESRGAN paper's equations write the plain sum.
    """

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        real_is_realer = _bce(real_logits - fake_logits.mean(), 1.0)
        fake_is_faker = _bce(fake_logits - real_logits.mean(), 0.0)
        return (real_is_realer + fake_is_faker) / 2

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        if real_logits is None:
            raise ValueError("the relativistic generator loss needs D(HR) as real_logits")
        real_is_faker = _bce(real_logits - fake_logits.mean(), 0.0)
        fake_is_realer = _bce(fake_logits - real_logits.mean(), 1.0)
        return (real_is_faker + fake_is_realer) / 2


class HingeGANLoss(AdversarialLoss):
    """Hinge loss (ugsr eq. 2-4): D minimises E[max(0, 1 - D(HR))] + E[max(0, 1 + D(SR))], G -E[D(SR)]."""

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        # -E[min(0, -1 + D(HR))] = E[relu(1 - D(HR))], and likewise for the fake term.
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        return -fake_logits.mean()


class UNetDecisions(Protocol):
    """What a U-Net discriminator returns (any named tuple with these fields, e.g. models' UNetOutput)."""

    @property
    def global_logit(self) -> Tensor: ...  # (N, 1) from the encoder head, D_U^enc

    @property
    def pixel_logits(self) -> Tensor: ...  # (N, 1, H, W) from the decoder head, D_U^dec, at input resolution


class UNetLogits(NamedTuple):
    """The minimal UNetDecisions: a per-image decision and a per-pixel decision map."""

    global_logit: Tensor  # (N, 1)
    pixel_logits: Tensor  # (N, 1, H, W)


class UNetDiscriminatorTerms(NamedTuple):
    """The three terms of ugsr eq. 5 and their sum."""

    encoder: Tensor  # eq. 2
    decoder: Tensor  # eq. 3
    consistency: Tensor  # CutMix consistency regularization (U-Net GAN)
    total: Tensor  # eq. 5: L_DU = L_enc + L_dec + weight * L_cons


def cutmix_mask(
    batch: int,
    height: int,
    width: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    area_range: tuple[float, float] = CUTMIX_AREA_RANGE,
) -> Tensor:
    """Random CutMix masks, (N, 1, H, W) in {0, 1}: 1 takes the real image, 0 the fake one.

    Each sample gets one axis-aligned box covering a uniform fraction of the image (clipped at the borders,
    as in CutMix); for a random half of the samples the box is real inside a fake image, otherwise fake
    inside a real image.
    """
    area = torch.empty(batch).uniform_(*area_range, generator=generator)
    side = area.sqrt()
    box_h, box_w = side * height, side * width
    center_y = torch.rand(batch, generator=generator) * height
    center_x = torch.rand(batch, generator=generator) * width
    top, bottom = (center_y - box_h / 2).round(), (center_y + box_h / 2).round()
    left, right = (center_x - box_w / 2).round(), (center_x + box_w / 2).round()
    rows = torch.arange(height, dtype=torch.float32).view(1, height, 1)
    cols = torch.arange(width, dtype=torch.float32).view(1, 1, width)
    inside = (
        (rows >= top.view(-1, 1, 1))
        & (rows < bottom.view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < right.view(-1, 1, 1))
    )  # (N, H, W): all samples at once, no Python loop
    real_box = torch.rand(batch, generator=generator) < CUTMIX_REAL_BOX_PROBABILITY
    mask = inside ^ ~real_box.view(-1, 1, 1)  # real_box: 1 inside the box; else 1 outside it
    return mask.unsqueeze(1).to(device=device, dtype=torch.float32)


def cutmix(real: Tensor, fake: Tensor, mask: Tensor) -> Tensor:
    """mix(real, fake, M) = M * real + (1 - M) * fake, for images or per-pixel maps alike."""
    mask = mask.to(real.dtype)
    return mask * real + (1 - mask) * fake


class UNetDiscriminatorLoss:
    """ugsr's U-Net discriminator objective (paper 002 sec. 2.3): hinge loss on the encoder and decoder heads
    (eq. 2-4) plus CutMix consistency regularization (eq. 5).

    Consistency (U-Net GAN, Schonfeld et al., 2020): the decoder's map of a CutMix image must equal the
    same CutMix of the decoder's maps of the two images, ||D_dec(mix(x, G(z), M)) - mix(D_dec(x),
    D_dec(G(z)), M)||^2, here as the mean over pixels and images. Both sides keep their gradient, as the
    equation reads; a pointwise discriminator scores exactly 0.
    `discriminator` is any callable image -> UNetDecisions (a named tuple with fields `global_logit`,
    `pixel_logits`), so this loss does not depend on the discriminator class.
    """

    def __init__(self, *, consistency_weight: float = CONSISTENCY_WEIGHT) -> None:
        self.consistency_weight = consistency_weight
        self.hinge = HingeGANLoss()

    def discriminator_loss(
        self,
        discriminator: Callable[[Tensor], UNetDecisions],
        real: Tensor,
        fake: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> UNetDiscriminatorTerms:
        """Eq. 5 for HR `real` and SR `fake` images, (N, 3, H, W); `fake` is detached here."""
        fake = fake.detach()  # a discriminator step never trains the generator
        real_out, fake_out = discriminator(real), discriminator(fake)
        encoder = self.hinge.discriminator_loss(real_out.global_logit, fake_out.global_logit)
        decoder = self.hinge.discriminator_loss(real_out.pixel_logits, fake_out.pixel_logits)
        if self.consistency_weight > 0:
            consistency = self.consistency(discriminator, real, fake, real_out, fake_out, generator=generator)
        else:
            consistency = encoder.new_zeros(())
        total = encoder + decoder + self.consistency_weight * consistency
        return UNetDiscriminatorTerms(encoder, decoder, consistency, total)

    def consistency(
        self,
        discriminator: Callable[[Tensor], UNetDecisions],
        real: Tensor,
        fake: Tensor,
        real_out: UNetDecisions,
        fake_out: UNetDecisions,
        *,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """CutMix consistency: mean squared gap between D_dec(mix(images)) and mix(D_dec(images))."""
        batch, _, height, width = real.shape
        mask = cutmix_mask(batch, height, width, generator=generator, device=real.device)
        mixed_out = discriminator(cutmix(real, fake, mask))
        mixed_target = cutmix(real_out.pixel_logits, fake_out.pixel_logits, mask)
        return F.mse_loss(mixed_out.pixel_logits, mixed_target)

    def generator_loss(self, fake_out: UNetDecisions) -> Tensor:
        """Eq. 4: -E[D_enc(SR) + D_dec(SR)], each head averaged over its own elements."""
        encoder = self.hinge.generator_loss(fake_out.global_logit)
        decoder = self.hinge.generator_loss(fake_out.pixel_logits)
        return encoder + decoder


def feature_matching_loss(fake_features: Sequence[Tensor], real_features: Sequence[Tensor]) -> Tensor:
    """ugsr eq. 7: sum over discriminator blocks l of E||D_l(SR) - D_l(HR)||_1 (mean over elements per block).

    The HR features are targets (detached). The paper writes a single block l without saying which; our
    reading sums every block the discriminator exposes, the usual form of feature matching (pix2pixHD).
    """
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(f"feature matching needs equal, non-empty lists: {len(fake_features)} vs {len(real_features)}")
    terms = [F.l1_loss(fake, real.detach()) for fake, real in zip(fake_features, real_features, strict=True)]
    return torch.stack(terms).sum()
