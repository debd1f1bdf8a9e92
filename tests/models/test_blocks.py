"""Shared layers of the EDSR family (srtk/models/blocks.py)."""

import pytest
import torch
import torch.nn.functional as F

from srtk.errors import ConfigError
from srtk.models.backbone import check_taps
from srtk.models.blocks import (
    DIV2K_RGB_MEAN,
    ChannelAttention,
    PixelShuffleUpsampler,
    ResidualBlock,
    ResidualChannelAttentionBlock,
    ResidualGroup,
    RGBMeanShift,
    upsample_stage_factors,
)

# --- the layers themselves ---------------------------------------------------------------------------------


def test_mean_shift_is_a_fixed_buffer_and_round_trips() -> None:
    shift = RGBMeanShift()
    img = torch.rand(2, 3, 4, 4)
    centred = shift.subtract(img)
    expected = img - torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1)
    torch.testing.assert_close(centred, expected)
    torch.testing.assert_close(shift.add(centred), img)
    assert list(shift.parameters()) == [] and shift.state_dict() == {}  # never trained, never checkpointed
    assert shift.to(torch.float64).rgb_mean.dtype == torch.float64


def test_residual_block_scales_its_residual() -> None:
    block = ResidualBlock(num_features=4, res_scale=0.1)
    with torch.no_grad():  # conv1 -> constant 1 (ReLU keeps it); conv2 -> constant 2: residual is 2 everywhere
        for conv, bias in ((block.conv1, 1.0), (block.conv2, 2.0)):
            conv.weight.zero_()
            conv.bias.fill_(bias)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(block(x), x + 0.1 * 2.0)


def test_channel_attention_known_gate() -> None:
    attention = ChannelAttention(num_features=32, reduction=16)
    assert attention.down.out_channels == 2  # C / r
    with torch.no_grad():
        for conv in (attention.down, attention.up):
            conv.weight.zero_()
            conv.bias.zero_()
        attention.up.bias.fill_(1.0)  # the gate is sigmoid(1) whatever the input
    x = torch.randn(2, 32, 3, 3)
    torch.testing.assert_close(attention(x), x * torch.sigmoid(torch.tensor(1.0)))
    with pytest.raises(ValueError, match="divisible"):
        ChannelAttention(num_features=30, reduction=16)


def test_channel_attention_gates_by_channel_mean() -> None:
    attention = ChannelAttention(num_features=4, reduction=2)
    x = torch.randn(2, 4, 6, 6)
    with torch.no_grad():
        pooled = x.mean(dim=(2, 3), keepdim=True)
        hidden = F.relu(F.conv2d(pooled, attention.down.weight, attention.down.bias))
        gate = torch.sigmoid(F.conv2d(hidden, attention.up.weight, attention.up.bias))
        torch.testing.assert_close(attention(x), x * gate)


def test_rcab_and_group_are_identity_when_the_last_convs_are_zero() -> None:
    block = ResidualChannelAttentionBlock(num_features=16, reduction=4)
    group = ResidualGroup(num_features=16, num_blocks=2, reduction=4)
    with torch.no_grad():
        block.conv2.weight.zero_()
        block.conv2.bias.zero_()
        group.conv.weight.zero_()
        group.conv.bias.zero_()
    x = torch.randn(1, 16, 6, 6)
    torch.testing.assert_close(block(x), x)  # CA of a zero residual is zero
    torch.testing.assert_close(group(x), x)
    assert len(group.blocks) == 2


@pytest.mark.parametrize(("scale", "factors"), [(2, [2]), (3, [3]), (4, [2, 2]), (8, [2, 2, 2])])
def test_upsample_stage_factors(scale: int, factors: list[int]) -> None:
    assert upsample_stage_factors(scale) == factors


@pytest.mark.parametrize("scale", [1, 5, 6])
def test_upsample_stage_factors_rejects_other_scales(scale: int) -> None:
    with pytest.raises(ValueError, match="not supported"):
        upsample_stage_factors(scale)


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_pixel_shuffle_upsampler_can_be_nearest_neighbour(scale: int) -> None:
    features = 2
    upsampler = PixelShuffleUpsampler(num_features=features, scale=scale)
    with torch.no_grad():
        for stage in upsampler.stages:
            conv, factor = stage.conv, stage.shuffle.upscale_factor
            conv.weight.zero_()
            conv.bias.zero_()
            for channel in range(features):  # every sub-pixel of channel c copies c's centre tap
                conv.weight[channel * factor**2 : (channel + 1) * factor**2, channel, 1, 1] = 1.0
    x = torch.randn(1, features, 3, 4)
    torch.testing.assert_close(upsampler(x), F.interpolate(x, scale_factor=scale, mode="nearest"))


def test_check_taps() -> None:
    check_taps((1, 4), 4)
    with pytest.raises(ConfigError, match="outside"):
        check_taps((0,), 4)
    with pytest.raises(ConfigError, match="outside"):
        check_taps((5,), 4)
