"""Pixel-wise image losses: L1 (SPSR paper 000 sec. 3.3 eq. 3, ugsr paper 002 eq. 12, GPSR paper 003 eq. 18),
with L2 and Charbonnier as options.

Convention: SR and HR are RGB, NCHW, float in [0, 1]; every loss is the mean over all elements.
"""

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import ConfigError

PixelCriterion = Literal["l1", "l2", "charbonnier"]

# Charbonnier: sqrt(d^2 + eps^2), a differentiable L1. 1e-3 is the value of LapSRN (Lai et al., 2017),
# the loss's usual SR setting; it is an L1 for |d| >> eps and quadratic near 0.
CHARBONNIER_EPS = 1e-3


def pixel_distance(
    prediction: Tensor, target: Tensor, *, criterion: PixelCriterion = "l1", eps: float = CHARBONNIER_EPS
) -> Tensor:
    """Mean element-wise distance between two tensors of the same shape (any layout)."""
    if criterion == "l1":
        return F.l1_loss(prediction, target)
    if criterion == "l2":
        return F.mse_loss(prediction, target)
    if criterion == "charbonnier":
        return torch.sqrt((prediction - target).square() + eps * eps).mean()
    raise ConfigError(f"unknown pixel criterion {criterion!r}; choose one of: {', '.join(get_args(PixelCriterion))}")


class PixelLoss(nn.Module):
    """L_pix = E ||SR - HR|| (SPSR eq. 3): L1 by default, as in all three papers."""

    def __init__(self, *, criterion: PixelCriterion = "l1", eps: float = CHARBONNIER_EPS) -> None:
        super().__init__()
        if criterion not in get_args(PixelCriterion):  # fail at build time, not at the first step
            raise ConfigError(
                f"unknown pixel criterion {criterion!r}; choose one of: {', '.join(get_args(PixelCriterion))}"
            )
        self.criterion: PixelCriterion = criterion
        self.eps = eps  # only used by "charbonnier"

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return pixel_distance(sr, hr, criterion=self.criterion, eps=self.eps)
