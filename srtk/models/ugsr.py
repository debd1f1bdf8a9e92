"""The "ugsr" generator: RRDB SR branch + gradient branch fused after upsampling (paper 002 sec. 2.2, Fig. 1).

Paper 002 (gradient-branch generator with a U-Net discriminator and LPIPS loss) builds on SPSR (its [16]):
- SR branch: RRDBNet with 23 RRDBs (sec. 2.2, Fig. 1), its features upsampled by nearest x2 + conv + LReLU.
- Gradient branch: the gradient map M(I^LR) from the fixed operator of SPSR, 4 gradient blocks (RRDBs)
  fed with the features of RRDBs 5, 10, 15 and 20 of the SR branch (sec. 2.2), as SPSR's `GradientBranch`.
- Fusion "after the upsampling layer" (sec. 1): "an additional fusion block which contains an RRDB and two
  convolution layers" (sec. 2.2). Our reading, which uses exactly the layers the paper counts: the SR
  branch stops at its upsampled features (no HR conv / RGB conv of its own); the fusion block concatenates
  them with the gradient branch's HR features, runs an RRDB over both, merges to F channels with a conv
  and LReLU, and a last conv gives RGB. (SPSR instead fuses after the SR branch's HR convs.)
- Head: "we first up-sample the LR image using nearest kernel to match the HR image size, and then
  down-sample the image via desubpixel layer at the head of the generator" (sec. 3.1), so that MoA
  augmentation (CutBlur and friends) can feed HR-sized mixed images. Both branches therefore start from
  the pixel-unshuffled image (3*s^2 channels at LR size). For a plain LR input the unshuffled
  nearest-upsampled image is the LR image repeated s^2 times along channels, which `forward` builds
  directly; `forward(x, hr_grid=True)` takes an HR-sized (MoA) input. M is applied to each of the s^2
  phase images: for a plain LR input every phase is I^LR, so the branch sees exactly M(I^LR).
Convention: RGB, NCHW, float in [0, 1] in and out.
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.models.backbone import evenly_spaced_taps
from srtk.models.gradient import GradientMap
from srtk.models.rrdbnet import LEAKY_SLOPE, RRDB, RRDBTrunk, UpconvUpsampler, conv3x3
from srtk.models.spsr import GradientBranch

NUM_GRADIENT_BLOCKS = 4  # paper 002 Fig. 1: "4 RRDB in gradient branch", fed by RRDBs 5/10/15/20


class UGSROutput(NamedTuple):
    sr: Tensor  # (N, 3, s*h, s*w) the super-resolved image
    grad_branch: Tensor | None = None  # (N, 3, s*h, s*w) the gradient branch's HR gradient map vs M(HR); None: no GB


class UGSR(nn.Module):
    """ugsr generator: RGB, NCHW, [0, 1] LR (or HR-grid MoA input) -> UGSROutput(sr, grad_branch)."""

    outputs = frozenset(UGSROutput._fields)  # srtk.models.capabilities
    accepts_hr_grid = True  # forward(x, hr_grid=True): the desubpixel head takes MoA's HR-grid input
    fusion_modules = ("fusion_block", "fusion_conv", "out_conv")

    def __init__(
        self,
        *,
        scale: int = 4,  # paper 002 sec. 3.1: x4 (32x32 LR -> 128x128 HR patches)
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,  # RRDB-Net defaults (paper 002 sec. 2.2 follows ESRGAN [22])
        num_blocks: int = 23,  # paper 002 Fig. 1: "23 RRDB in SR branch"
        growth_channels: int = 32,  # ESRGAN [22]
        num_gradient_blocks: int = NUM_GRADIENT_BLOCKS,  # paper 002 Fig. 1
        negative_slope: float = LEAKY_SLOPE,
        use_gradient_branch: bool = True,  # paper 002 Table 2 "Ours w/o GB": False fuses the SR features alone
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_features = num_features
        self.num_blocks = num_blocks
        self.taps = evenly_spaced_taps(num_blocks, num_gradient_blocks)  # (5, 10, 15, 20) for 23 blocks
        packed_channels = in_channels * scale**2  # desubpixel head (paper 002 sec. 3.1)
        self.gradient_map = GradientMap()
        self.shallow_conv = conv3x3(packed_channels, num_features)
        self.sr_trunk = RRDBTrunk(num_features=num_features, num_blocks=num_blocks, growth_channels=growth_channels)
        self.sr_upsampler = UpconvUpsampler(scale=scale, num_features=num_features, negative_slope=negative_slope)
        self.gradient_branch: GradientBranch | None = None
        if use_gradient_branch:
            self.gradient_branch = GradientBranch(
                scale=scale,
                in_channels=packed_channels,
                out_channels=in_channels,  # the HR gradient map has the image's channels
                num_features=num_features,
                tap_channels=num_features,
                num_taps=num_gradient_blocks,
                growth_channels=growth_channels,
                negative_slope=negative_slope,
            )
        else:
            self.outputs = frozenset({"sr"})  # no HR gradient map for the gradient losses to read
        fused_channels = 2 * num_features if use_gradient_branch else num_features  # [grad_feats, sr_feats] or sr
        self.fusion_block = RRDB(num_features=fused_channels, growth_channels=growth_channels)
        self.fusion_conv = conv3x3(fused_channels, num_features)
        self.out_conv = conv3x3(num_features, out_channels)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, image: Tensor, *, hr_grid: bool = False) -> UGSROutput:
        """`image` is the LR image (N, C, h, w), or with `hr_grid` an HR-sized input (N, C, s*h, s*w)."""
        if hr_grid:
            packed = F.pixel_unshuffle(image, self.scale)  # (N, C*s*s, h, w)
        else:
            # == pixel_unshuffle(nearest_upsample(lr, s), s): every phase is the LR image itself.
            packed = image.repeat_interleave(self.scale**2, dim=1)
        trunk, tapped = self.sr_trunk(self.shallow_conv(packed), self.taps)
        sr_feats = self.sr_upsampler(trunk)  # (N, F, s*h, s*w): fused right after the upsampling layer
        if self.gradient_branch is None:  # "Ours w/o GB" (paper 002 Table 2): the fusion block sees the SR branch
            fused = self.fusion_conv(self.fusion_block(sr_feats))  # (N, F, H, W)
            return UGSROutput(sr=self.out_conv(self.act(fused)))
        lr_grad = self.gradient_map(packed)  # M(I^LR) per phase
        grad_feats, grad_branch = self.gradient_branch(lr_grad, tapped)
        fused = self.fusion_conv(self.fusion_block(torch.cat([grad_feats, sr_feats], dim=1)))  # (N, F, H, W)
        return UGSROutput(sr=self.out_conv(self.act(fused)), grad_branch=grad_branch)
