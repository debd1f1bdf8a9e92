"""Shared layers of the EDSR family (srtk/models/blocks.py), and the smoke checks all backbone tests use."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.models.backbone import SRBackbone
from srtk.models.blocks import (
    DIV2K_RGB_MEAN,
    ChannelAttention,
    PixelShuffleUpsampler,
    ResidualBlock,
    ResidualChannelAttentionBlock,
    ResidualGroup,
    RGBMeanShift,
    check_taps,
    upsample_stage_factors,
)

# --- helpers for the backbone test files -------------------------------------------------------------------


def check_smoke(model: SRBackbone, lr: Tensor) -> Tensor:
    """Forward + backward: SR size, finite output, every parameter gets a non-zero finite gradient."""
    model.train()
    sr = model(lr)
    n, c, h, w = lr.shape
    assert sr.shape == (n, c, h * model.scale, w * model.scale)
    assert torch.isfinite(sr).all()
    sr.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    return sr


def check_channels_last_and_autocast(
    model: nn.Module, lr: Tensor, *, bf16_rtol: float = 0.02, seed: int | None = None
) -> None:
    """channels_last input gives the fp32 result (1e-5); a CPU bfloat16 autocast forward stays close to it.

    bf16 keeps 8 mantissa bits (~0.4% per op); through a dozen convs the error stays within a few percent of
    the output's range, far below what a wrong layout would give. `seed` reseeds torch before each forward,
    for models that draw random numbers (NLSN's hashing).
    """

    def run(img: Tensor) -> Tensor:
        if seed is not None:
            torch.manual_seed(seed)
        return model(img)

    model.eval()
    with torch.no_grad():
        reference = run(lr)
        channels_last = run(lr.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = run(lr)
    scale = reference.abs().max().item()
    torch.testing.assert_close(channels_last, reference, atol=1e-5 * scale, rtol=0)
    assert mixed.shape == reference.shape
    error = (mixed.float() - reference).abs().max().item()
    assert error <= bf16_rtol * scale, f"bf16 autocast error {error:.4g} vs output scale {scale:.4g}"


def parameter_count(model: nn.Module) -> int:
    return sum(param.numel() for param in model.parameters())


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
    with pytest.raises(ValueError, match="outside"):
        check_taps((0,), 4)
    with pytest.raises(ValueError, match="outside"):
        check_taps((5,), 4)
