"""SPSR's gradient-space losses (paper 000 sec. 3.3, eq. 7-10; ugsr paper 002 eq. 8-11 reuses them).

M(.) is the gradient-intensity operator of srtk.models.gradient (eq. 2). Convention: images RGB, NCHW,
float in [0, 1]; gradient maps have the image's shape; every loss is the mean over all elements.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.losses.pixel import PixelCriterion, PixelLoss
from srtk.models.gradient import GRADIENT_EPS, GradientMap


class GradientPixelLoss(nn.Module):
    """L_SR^{Pix_GM} = E ||M(SR) - M(HR)||_1 (eq. 7): the gradient map of the SR image against HR's.

    `criterion` and `padding` exist for the SPSR authors' released code, which compares the maps by MSE and pads
    the operator by 2 (srtk.presets.spsr_official_release); the defaults are the paper's.
    """

    def __init__(self, *, eps: float = GRADIENT_EPS, criterion: PixelCriterion = "l1", padding: int = 1) -> None:
        super().__init__()
        self.gradient_map = GradientMap(eps=eps, padding=padding)
        self.compare = PixelLoss(criterion=criterion)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():  # the target
            hr_grad = self.gradient_map(hr)
        return self.compare(self.gradient_map(sr), hr_grad)


class GradientBranchPixelLoss(nn.Module):
    """L_GB^{Pix_GM} = E ||GB(LR) - M(HR)||_1 (eq. 10's last term; ugsr eq. 9): the gradient branch's output
    (an HR-size gradient map, (N, 3, H, W)) against the HR image's gradient map."""

    def __init__(self, *, eps: float = GRADIENT_EPS) -> None:
        super().__init__()
        self.gradient_map = GradientMap(eps=eps)

    def forward(self, branch_gradient: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():
            hr_grad = self.gradient_map(hr)
        return F.l1_loss(branch_gradient, hr_grad)


class GradientPair(NamedTuple):
    """The gradient discriminator D_GM's inputs (eq. 8-9)."""

    sr: Tensor  # M(SR), carries the generator's graph (eq. 9 trains G through it)
    hr: Tensor  # M(HR), a constant


class GradientAdversarialInputs(nn.Module):
    """(SR, HR) -> (M(SR), M(HR)): what D_GM judges in eq. 8 (its loss) and eq. 9 (the generator's).

    Feed the pair to any AdversarialLoss (SPSR trains D_GM with RaGAN, like D_I); detach `sr` for the
    discriminator step.
    """

    def __init__(self, *, eps: float = GRADIENT_EPS, padding: int = 1) -> None:
        super().__init__()
        self.gradient_map = GradientMap(eps=eps, padding=padding)

    def forward(self, sr: Tensor, hr: Tensor) -> GradientPair:
        with torch.no_grad():
            hr_grad = self.gradient_map(hr)
        return GradientPair(sr=self.gradient_map(sr), hr=hr_grad)
