"""GPSR's gradient-guided (GG) loss with deep multi-scale supervision (paper 003 sec. 3.2.2, eq. 12-18).

Our reading of the PDF-extracted equations:
- eq. 12: the s-th gradient module's output passes through a conv to a gradient map G_s (s = 1..N, N = log2
  scale; module s works at 2^s x the LR size, so G_N is HR-sized). That conv belongs to the network; this
  loss takes the list [G_1, ..., G_N].
- eq. 13: G'_s = g(f_down(I_HR)), HR bicubic-downsampled to G_s's size, then g(.) of eq. 8-9 (central
  differences, l2 norm of the two directions per channel, i.e. srtk's M(.), with its small eps under the
  root). The factor is read off the shapes; G_N's target is g(I_HR) itself.
- eq. 14: L_grad^pix = sum_s E||G_s - G'_s||_1  (mean per scale, summed over scales, not averaged).
- eq. 15: L_SG^pix = E||g(I_SR) - g(I_HR)||_1.
- eq. 16: L_gg = alpha L_grad^pix + beta L_SG^pix, alpha = 0.1, beta = 0.001 ("empirically").
- eq. 17-18: L_GP = L_SR^pix + L_gg with L_SR^pix = E||I_SR - I_HR||_1 (weight 1).
Convention: images RGB, NCHW, float in [0, 1]; gradient maps (N, 3, h, w).
"""

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.data.resize import imresize
from srtk.models.gradient import GRADIENT_EPS, GradientMap

MULTI_SCALE_WEIGHT = 0.1  # alpha, GPSR eq. 16
SR_GRADIENT_WEIGHT = 0.001  # beta, GPSR eq. 16
PIXEL_WEIGHT = 1.0  # eq. 17 adds L_SR^pix unweighted


class GradientGuidedTerms(NamedTuple):
    """The terms of GPSR eq. 14-17 (unweighted) and the weighted total L_GP."""

    pixel: Tensor  # L_SR^pix, eq. 18
    multi_scale: Tensor  # L_grad^pix, eq. 14
    sr_gradient: Tensor  # L_SG^pix, eq. 15
    gradient_guided: Tensor  # L_gg = alpha * multi_scale + beta * sr_gradient, eq. 16
    total: Tensor  # L_GP = pixel_weight * pixel + L_gg, eq. 17


class GradientGuidedLoss(nn.Module):
    """L_GP = L_SR^pix + alpha L_grad^pix + beta L_SG^pix (GPSR eq. 14-18); pixel_weight=0 leaves L_gg."""

    def __init__(
        self,
        *,
        multi_scale_weight: float = MULTI_SCALE_WEIGHT,  # alpha, sec. 3.2.2
        sr_gradient_weight: float = SR_GRADIENT_WEIGHT,  # beta, sec. 3.2.2
        pixel_weight: float = PIXEL_WEIGHT,  # eq. 17
        eps: float = GRADIENT_EPS,
    ) -> None:
        super().__init__()
        self.multi_scale_weight = multi_scale_weight
        self.sr_gradient_weight = sr_gradient_weight
        self.pixel_weight = pixel_weight
        self.gradient_map = GradientMap(eps=eps)

    def targets(self, hr: Tensor, sizes: Sequence[tuple[int, int]]) -> list[Tensor]:
        """G'_s = g(f_down(HR)) at each (h, w) in `sizes` (eq. 13); HR's own size skips the resampling."""
        hr_height, hr_width = hr.shape[-2:]
        targets = []
        with torch.no_grad():
            for height, width in sizes:  # N <= 3 scales: a short loop over tensors, not over channels
                if hr_height % height or hr_width % width or hr_height // height != hr_width // width:
                    raise ValueError(
                        f"gradient prediction of size {height}x{width} is not an integer downscale of HR "
                        f"{hr_height}x{hr_width}"
                    )
                if (height, width) == (hr_height, hr_width):
                    down = hr
                else:
                    # f_down: "the downsampling function with bicubic kernel" (paper 003 eq. 13). Reading: the
                    # MATLAB-style bicubic that makes srtk's BI LR inputs (paper 003 sec. 4.1.1 says only
                    # "bicubic (BI)", not MATLAB), so every scale's target comes from the same degradation,
                    # borders included.
                    down = imresize(hr, size=(height, width))
                targets.append(self.gradient_map(down))
        return targets

    def forward(self, sr: Tensor, hr: Tensor, gradient_predictions: Sequence[Tensor]) -> GradientGuidedTerms:
        """`gradient_predictions` = [G_1, ..., G_N], G_s of shape (N, 3, H / 2^(N-s), W / 2^(N-s))."""
        if not gradient_predictions:
            raise ValueError("GPSR's GG loss needs at least one multi-scale gradient prediction (eq. 14)")
        targets = self.targets(hr, [tuple(pred.shape[-2:]) for pred in gradient_predictions])
        for pred, target in zip(gradient_predictions, targets, strict=True):
            if pred.shape != target.shape:
                raise ValueError(
                    f"gradient prediction {tuple(pred.shape)} does not match its target {tuple(target.shape)}"
                )
        multi_scale = torch.stack(
            [F.l1_loss(pred, target) for pred, target in zip(gradient_predictions, targets, strict=True)]
        ).sum()
        with torch.no_grad():
            hr_grad = self.gradient_map(hr)
        sr_gradient = F.l1_loss(self.gradient_map(sr), hr_grad)
        pixel = F.l1_loss(sr, hr)
        gradient_guided = self.multi_scale_weight * multi_scale + self.sr_gradient_weight * sr_gradient
        total = self.pixel_weight * pixel + gradient_guided
        return GradientGuidedTerms(pixel, multi_scale, sr_gradient, gradient_guided, total)
