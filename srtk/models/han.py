"""HAN: holistic attention network (Niu et al., ECCV 2020, sec. 3.1-3.3, Fig. 2), one of the backbones PCL-SR
retrains (paper 004, Table II).

An RCAN trunk (10 residual groups of 20 RCABs, 64 features, reduction 16) whose group outputs feed a layer
attention module (LAM, sec. 3.2) and whose final trunk conv feeds a channel-spatial attention module (CSAM,
sec. 3.3); the two are fused by a conv and added to the shallow features before RCAN's upsampler.

Readings of the paper, with the numbers that decide them:
- LAM attends over the N group outputs and the trunk conv after them (N + 1 = 11 feature groups), and a 3x3
  conv fuses the 11 x 64 channels back to 64; CSAM's output and LAM's are concatenated and fused by another
  3x3 conv. This is the layout whose size is what paper 003 (Table 4) lists for HAN: 16.07M parameters at
  x4 and 16.22M at x8; a 10-input LAM would give 16.03M.
- LAM weights are w = softmax(phi(FG) phi(FG)^T) (HAN eq. 6), normalised over the index that is summed in
  F_Lj = alpha sum_i w_ij FG_i + FG_j (eq. 7), so each output is FG_j plus a convex mix of all groups. The
  authors' code feeds softmax(rowmax - energy) instead (an inverted softmax); srtk follows the paper.
  Loading the authors' HAN checkpoints would need that form and their reversed group order.
RGB, NCHW, float in [0, 1] in and out.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from srtk.models.backbone import check_taps
from srtk.models.blocks import (
    conv2d,
)
from srtk.models.rcan import RCAN

CSAM_KERNEL_SIZE = 3  # the 3D convolution of CSAM spans 3 channels x 3 x 3 pixels (HAN sec. 3.3)


class LayerAttention(nn.Module):
    """LAM (HAN sec. 3.2, eq. 6-7): each feature group plus alpha times a softmax mix of all of them.

    (N, L, C, H, W) -> (N, L, C, H, W). alpha starts at 0 (the paper's initialisation), so training
    starts from plain concatenation.
    """

    def __init__(self) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1))

    def forward(self, groups: Tensor) -> Tensor:
        flat = groups.flatten(2)  # (N, L, C*H*W): phi, the reshape of eq. 6
        # The correlations are sums over C*H*W products (~10^5 terms): bfloat16 would round them by far more
        # than their differences and flip the softmax, so the small L x L attention runs in float32.
        with torch.autocast(device_type=groups.device.type, enabled=False):
            flat32 = flat.float()
            weights = torch.softmax(flat32 @ flat32.transpose(1, 2), dim=-1)  # (N, L, L), rows sum to 1
            mixed = (weights @ flat32).to(groups.dtype)
        return self.alpha.to(groups.dtype) * mixed.view_as(groups) + groups


class ChannelSpatialAttention(nn.Module):
    """CSAM (HAN sec. 3.3, eq. 8): x + beta * sigmoid(conv3d(x)) * x, one 3D conv over (channel, y, x).

    beta starts at 0 as in the paper, so the module starts as the identity.
    """

    def __init__(self, *, kernel_size: int = CSAM_KERNEL_SIZE) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, kernel_size, padding=kernel_size // 2)  # channels become a depth axis
        self.gate = nn.Sigmoid()
        self.beta = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        attention = self.gate(self.conv(x.unsqueeze(1))).squeeze(1)  # (N, C, H, W), one weight per element
        return x + self.beta.to(x.dtype) * attention * x


class HAN(RCAN):
    """HAN backbone. Taps (1-based) are the outputs of residual group i (`num_blocks` == `num_groups`)."""

    def __init__(
        self,
        *,
        scale: int = 4,
        num_groups: int = 10,  # N residual groups, HAN sec. 4.1 (RCAN's setting)
        blocks_per_group: int = 20,  # RCABs per group, HAN sec. 4.1
        num_features: int = 64,  # HAN sec. 4.1
        reduction: int = 16,  # channel-attention reduction, HAN sec. 4.1
        kernel_size: int = 3,
    ) -> None:
        super().__init__(
            scale=scale,
            num_groups=num_groups,
            blocks_per_group=blocks_per_group,
            num_features=num_features,
            reduction=reduction,
            kernel_size=kernel_size,
        )  # RCAN's head, residual groups, trunk conv, upsampler and reconstruction
        self.layer_attention = LayerAttention()
        # LAM sees the group outputs and the trunk conv's output: num_groups + 1 feature groups.
        self.layer_fusion = conv2d((num_groups + 1) * num_features, num_features, kernel_size)
        self.channel_spatial_attention = ChannelSpatialAttention()
        self.fusion = conv2d(2 * num_features, num_features, kernel_size)  # [CSAM, LAM] -> F

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        check_taps(taps, self.num_blocks)
        feats, group_outputs = shallow, []
        for group in self.groups:
            feats = group(feats)
            group_outputs.append(feats)
        last = self.trunk_conv(feats)
        layers = torch.stack([*group_outputs, last], dim=1)  # (N, G+1, C, h, w): the FGs of LAM
        layer_feats = self.layer_fusion(self.layer_attention(layers).flatten(1, 2))  # (N, C, h, w)
        channel_spatial_feats = self.channel_spatial_attention(last)
        trunk_feats = self.fusion(torch.cat([channel_spatial_feats, layer_feats], dim=1)) + shallow
        return trunk_feats, [group_outputs[tap - 1] for tap in taps]
