"""SRResNet: the residual generator of SRGAN (Ledig et al., CVPR 2017, sec. 2.2, Fig. 4), used as the second
"other backbone" of SPSR (paper 000, Appendix D, Table 7).

Topology of Ledig et al. Fig. 4: 9x9 conv + PReLU; 16 residual blocks (3x3 conv, [BN], PReLU, 3x3 conv,
[BN], identity skip); 3x3 conv [+ BN] and a skip from the first conv over the whole trunk; two x2
sub-pixel stages (conv to 256 channels, PixelShuffle, PReLU); 9x9 conv to RGB.

Batch norm: paper 000 does not say. Appendix D (Table 7) names "SRResNet [31]" (Ledig et al.), trains
SRResNet-GAN/-G/-P from a pretrained SRResNet with "the same" settings as for EDSR, and restates no layer.
Its "architecture of ESRGAN" (sec. 3.2 "Here we introduce the backbone of ESRGAN [60]"; sec. 5.1 "We use the
architecture of ESRGAN [60] as the backbone of our SR branch") is SPSR-G's RRDB backbone, not SRResNet.
reading: srtk defaults to the BN-free variant because SPSR trains in ESRGAN's framework (sec. 5.1 takes its
loss weights from [60]), which removes batch norm from its generators (ESRGAN, Wang et al. 2018, sec. 3.1:
BN brings artifacts and hurts generalisation); `batch_norm=True` is the SRGAN generator as published
(registry "srresnet-bn").
No mean shift: SRGAN feeds the [0, 1] image directly. RGB, NCHW, float in [0, 1] in and out.
"""

from collections.abc import Sequence

from torch import Tensor, nn

from srtk.models.backbone import SRBackbone, run_blocks
from srtk.models.blocks import RGB_CHANNELS, PixelShuffleUpsampler, conv2d

# Ledig et al. Fig. 4: k9n64s1 for the first and last convolutions, k3 everywhere else.
OUTER_KERNEL_SIZE = 9
INNER_KERNEL_SIZE = 3


def _norm(num_features: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(num_features) if batch_norm else nn.Identity()


class SRResNetBlock(nn.Module):
    """x + [BN](conv([PReLU]([BN](conv(x))))): the residual block of Ledig et al. Fig. 4."""

    def __init__(self, *, num_features: int = 64, batch_norm: bool = False) -> None:
        super().__init__()
        self.conv1 = conv2d(num_features, num_features, INNER_KERNEL_SIZE)
        self.norm1 = _norm(num_features, batch_norm)
        self.act = nn.PReLU()
        self.conv2 = conv2d(num_features, num_features, INNER_KERNEL_SIZE)
        self.norm2 = _norm(num_features, batch_norm)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.norm2(self.conv2(self.act(self.norm1(self.conv1(x)))))


class SRResNet(SRBackbone):
    """SRResNet backbone (about 1.5M parameters at x4). Taps (1-based) are the outputs of residual block i."""

    def __init__(
        self,
        *,
        scale: int = 4,  # SRGAN is x4; other scales add/remove x2 sub-pixel stages (x3: one x3 stage)
        num_blocks: int = 16,  # B = 16, Ledig et al. sec. 2.2 / Fig. 4
        num_features: int = 64,  # n64, Fig. 4
        batch_norm: bool = False,  # reading: removed, as in ESRGAN sec. 3.1; True: SRGAN (module docstring)
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.num_features = num_features
        self.head = conv2d(RGB_CHANNELS, num_features, OUTER_KERNEL_SIZE)
        self.head_act = nn.PReLU()
        self.blocks = nn.ModuleList(
            SRResNetBlock(num_features=num_features, batch_norm=batch_norm) for _ in range(num_blocks)
        )
        self.trunk_conv = conv2d(num_features, num_features, INNER_KERNEL_SIZE)
        self.trunk_norm = _norm(num_features, batch_norm)
        self.upsampler = PixelShuffleUpsampler(
            num_features=num_features, scale=scale, kernel_size=INNER_KERNEL_SIZE, activation=nn.PReLU
        )
        self.reconstruction = conv2d(num_features, RGB_CHANNELS, OUTER_KERNEL_SIZE)

    def shallow(self, lr: Tensor) -> Tensor:
        return self.head_act(self.head(lr))  # (N, F, h, w)

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        feats, tapped = run_blocks(self.blocks, shallow, taps)
        trunk_feats = self.trunk_norm(self.trunk_conv(feats)) + shallow  # the skip over all blocks (Fig. 4)
        return trunk_feats, tapped

    def upsample(self, trunk: Tensor) -> Tensor:
        return self.upsampler(trunk)  # (N, F, scale*h, scale*w)

    def reconstruct(self, hr_feats: Tensor) -> Tensor:
        return self.reconstruction(hr_feats)  # (N, 3, H, W)
