"""The pixel-wise structure loss of SPSR-P / SPSR-J (paper 000 sec. 4.3, eq. 14): L1 between the structure
features F(G(I_LR)) and F(I_HR) of a frozen structure extractor F.

reading: eq. 14 writes E_{I_SR} ||F(G(I_LR)) - F(I_HR)||_1, the L1 *norm* of each image's feature map averaged
over images, not the mean absolute difference. With beta_SF = 1e-7 (sec. 5.1) only the norm gives the term a
weight comparable with the others (32 channels x 32 x 32 positions per 128 px patch: ~3e-3 per unit of mean
difference); the mean would make it vanish (1e-7 per unit).
Convention: structure features (N, C, h, w), any float dtype; the loss is computed in float32.
"""

from torch import Tensor, nn


class StructurePixelLoss(nn.Module):
    """E over the batch of the L1 norm ||F(SR) - F(HR)||_1 of each image's structure features (eq. 14)."""

    def forward(self, sr_features: Tensor, hr_features: Tensor) -> Tensor:
        if sr_features.shape != hr_features.shape:
            raise ValueError(
                f"structure features differ in shape: {tuple(sr_features.shape)} vs {tuple(hr_features.shape)}"
            )
        difference = sr_features.float() - hr_features.float()
        return difference.abs().flatten(1).sum(dim=1).mean()
