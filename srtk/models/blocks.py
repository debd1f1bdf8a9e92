"""Layers shared by the EDSR family of backbones (EDSR, RCAN, HAN, NLSN) and SRResNet.

- `RGBMeanShift`: centre the LR image on the DIV2K mean and restore it at the end (EDSR, Lim et al. 2017,
  sec. 4.1 "subtract the mean RGB value of the whole dataset"; kept by RCAN, HAN and NLSN).
- `ResidualBlock`: conv-ReLU-conv with a scaled identity skip, no batch norm (EDSR sec. 3.1, Fig. 2).
- `ChannelAttention`, `ResidualChannelAttentionBlock`, `ResidualGroup`: RCAN (Zhang et al. 2018, 3.2-3.4).
- `PixelShuffleUpsampler`: conv + sub-pixel shuffle stages (ESPCN; EDSR Fig. 3 and SRGAN Fig. 4 use it).

Convention: RGB, NCHW, float in [0, 1] at the image boundary.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# Mean RGB of the DIV2K training images in [0, 1] (EDSR sec. 4.1). The EDSR-PyTorch code stores it as
# (0.4488, 0.4371, 0.4040) and scales it by rgb_range 255 in its MeanShift layers.
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
RGB_CHANNELS = 3

# Sub-pixel stages: a scale that is a power of two runs as x2 stages (x4 = 2 stages, x8 = 3, EDSR Fig. 3);
# x3 is one x3 stage. These are the only factors the EDSR-PyTorch Upsampler (and its checkpoints) know.
POWER_OF_TWO_STAGE = 2
ODD_STAGE = 3


def conv2d(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Conv2d:
    """A biased 'same' convolution (odd kernel, stride 1, zero padding), the only conv of these networks."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class RGBMeanShift(nn.Module):
    """Subtract / add back a fixed RGB mean, in the [0, 1] units of the image (EDSR sec. 4.1)."""

    def __init__(self, *, rgb_mean: Sequence[float] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        # A buffer, not a Parameter: it follows .to(), never trains and stays out of checkpoints.
        mean = torch.tensor(tuple(rgb_mean), dtype=torch.float32).view(1, RGB_CHANNELS, 1, 1)
        self.register_buffer("rgb_mean", mean, persistent=False)

    def subtract(self, img: Tensor) -> Tensor:
        return img - self.rgb_mean.to(img.dtype)

    def add(self, img: Tensor) -> Tensor:
        return img + self.rgb_mean.to(img.dtype)


class ResidualBlock(nn.Module):
    """EDSR residual block: x + res_scale * conv(ReLU(conv(x))), no batch norm (EDSR sec. 3.1, Fig. 2)."""

    def __init__(self, *, num_features: int = 64, res_scale: float = 1.0, kernel_size: int = 3) -> None:
        super().__init__()
        self.res_scale = res_scale  # 0.1 in EDSR-large: residual scaling keeps 256-feature training stable (sec. 3.2)
        self.conv1 = conv2d(num_features, num_features, kernel_size)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv2d(num_features, num_features, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(self.act(self.conv1(x)))


class ChannelAttention(nn.Module):
    """x * sigmoid(W_U ReLU(W_D avgpool(x))): channel attention with reduction r (RCAN sec. 3.3, eq. 9-10)."""

    def __init__(self, *, num_features: int = 64, reduction: int = 16) -> None:
        super().__init__()
        if num_features % reduction:
            raise ValueError(f"num_features {num_features} is not divisible by reduction {reduction}")
        squeezed = num_features // reduction
        self.pool = nn.AdaptiveAvgPool2d(1)  # global average pooling: channel statistic z_c (eq. 8)
        self.down = nn.Conv2d(num_features, squeezed, 1)  # W_D, channel-downscaling by r
        self.act = nn.ReLU(inplace=True)
        self.up = nn.Conv2d(squeezed, num_features, 1)  # W_U, channel-upscaling by r
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        weights = self.gate(self.up(self.act(self.down(self.pool(x)))))  # (N, C, 1, 1)
        return x * weights


class ResidualChannelAttentionBlock(nn.Module):
    """RCAB: x + CA(conv(ReLU(conv(x)))) (RCAN sec. 3.4, eq. 11-12; no residual scaling, as RCAN trains)."""

    def __init__(self, *, num_features: int = 64, reduction: int = 16, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv1 = conv2d(num_features, num_features, kernel_size)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = conv2d(num_features, num_features, kernel_size)
        self.attention = ChannelAttention(num_features=num_features, reduction=reduction)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attention(self.conv2(self.act(self.conv1(x))))


class ResidualGroup(nn.Module):
    """RG: x + conv(RCAB_B(... RCAB_1(x))), the short skip connection of RCAN sec. 3.2 (eq. 5)."""

    def __init__(
        self, *, num_features: int = 64, num_blocks: int = 20, reduction: int = 16, kernel_size: int = 3
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(
                ResidualChannelAttentionBlock(num_features=num_features, reduction=reduction, kernel_size=kernel_size)
                for _ in range(num_blocks)
            )
        )
        self.conv = conv2d(num_features, num_features, kernel_size)  # the group's tail conv W_g

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(self.blocks(x))


def upsample_stage_factors(scale: int) -> list[int]:
    """The sub-pixel stages of a scale: 4 -> [2, 2], 8 -> [2, 2, 2], 3 -> [3] (EDSR Fig. 3)."""
    if scale == ODD_STAGE:
        return [ODD_STAGE]
    if scale >= POWER_OF_TWO_STAGE and scale & (scale - 1) == 0:
        return [POWER_OF_TWO_STAGE] * (scale.bit_length() - 1)
    raise ValueError(f"scale {scale} is not supported: use 3 or a power of two (2, 4, 8, ...)")


class UpsampleStage(nn.Module):
    """conv to factor^2 * F channels, then PixelShuffle(factor): (N, F, h, w) -> (N, F, h*f, w*f)."""

    def __init__(
        self,
        *,
        num_features: int,
        factor: int,
        kernel_size: int = 3,
        activation: type[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.conv = conv2d(num_features, num_features * factor**2, kernel_size)
        self.shuffle = nn.PixelShuffle(factor)
        self.act = activation() if activation is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.shuffle(self.conv(x)))


class PixelShuffleUpsampler(nn.Module):
    """Sub-pixel upsampler: conv + PixelShuffle stages, optionally activated (SRGAN: PReLU; EDSR: none)."""

    def __init__(
        self,
        *,
        num_features: int,
        scale: int,
        kernel_size: int = 3,
        activation: type[nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.stages = nn.Sequential(
            *(
                UpsampleStage(num_features=num_features, factor=factor, kernel_size=kernel_size, activation=activation)
                for factor in upsample_stage_factors(scale)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(x)
