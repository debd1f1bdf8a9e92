"""ugsr generator (paper 002): shapes, the desubpixel head, fusion after upsampling, parameter count."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from srtk.errors import ConfigError
from srtk.models.gradient import GradientMap
from srtk.models.ugsr import UGSR, UGSROutput
from tests.models.checks import check_named_outputs_channels_last_and_bf16

TINY = {"num_features": 8, "num_blocks": 4, "growth_channels": 4}


def conv(in_channels: int, out_channels: int, kernel: int = 3) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


def rrdb(f: int, g: int) -> int:
    return 3 * (sum(conv(f + i * g, g) for i in range(4)) + conv(f + 4 * g, f))


def ugsr_params(*, scale: int, f: int, blocks: int, g: int, grad_blocks: int = 4, c: int = 3) -> int:
    """Paper 002 Fig. 1 / sec. 2.2 and 3.1 written out layer by layer."""
    stages = scale.bit_length() - 1
    packed = c * scale * scale  # desubpixel head
    sr_branch = conv(packed, f) + blocks * rrdb(f, g) + conv(f, f) + stages * conv(f, f)
    gradient_branch = (
        conv(packed, f)
        + grad_blocks * (rrdb(2 * f, g) + conv(2 * f, f))  # gradient block + merge per tapped feature
        + conv(f, f)
        + stages * conv(f, f)
        + 2 * conv(f, f)  # HR conv, next-to-last layer
        + conv(f, c, kernel=1)  # gradient map
    )
    fusion = rrdb(2 * f, g) + conv(2 * f, f) + conv(f, c)  # "an RRDB and two convolution layers"
    return sr_branch + gradient_branch + fusion


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_smoke_forward_backward(scale: int) -> None:
    model = UGSR(scale=scale, **TINY)
    lr = torch.rand(2, 3, 8, 8)
    out = model(lr)
    assert isinstance(out, UGSROutput)
    assert out.sr.shape == out.grad_branch.shape == (2, 3, 8 * scale, 8 * scale)
    assert torch.isfinite(out.sr).all() and torch.isfinite(out.grad_branch).all()
    (out.sr.square().mean() + out.grad_branch.abs().mean()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_scale_must_be_power_of_two() -> None:
    with pytest.raises(ConfigError):
        UGSR(scale=3, **TINY)


@pytest.mark.parametrize("scale", [2, 4])
def test_parameter_count_follows_the_paper(scale: int) -> None:
    model = UGSR(scale=scale, **TINY)
    assert sum(p.numel() for p in model.parameters()) == ugsr_params(scale=scale, f=8, blocks=4, g=4)


def test_full_size_parameter_count_and_taps() -> None:
    model = UGSR()
    assert model.taps == (5, 10, 15, 20)  # paper 002 sec. 2.2
    count = sum(p.numel() for p in model.parameters())
    assert count == ugsr_params(scale=4, f=64, blocks=23, g=32) == 24_737_286


def test_lr_input_equals_nearest_upsampled_input_on_the_hr_grid() -> None:
    """Paper 002 sec. 3.1: nearest-upsampled LR through the desubpixel head is the LR path, exactly."""
    model = UGSR(scale=4, **TINY).eval()
    lr = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        from_lr = model(lr)
        from_grid = model(F.interpolate(lr, scale_factor=4, mode="nearest"), hr_grid=True)
        mixed = model(torch.rand(1, 3, 24, 24), hr_grid=True)  # an MoA-style HR-sized input
    torch.testing.assert_close(from_grid.sr, from_lr.sr, rtol=0, atol=0)
    torch.testing.assert_close(from_grid.grad_branch, from_lr.grad_branch, rtol=0, atol=0)
    assert mixed.sr.shape == (1, 3, 24, 24)


def test_gradient_branch_sees_m_of_lr_and_fusion_follows_upsampling() -> None:
    model = UGSR(scale=2, **TINY).eval()
    inputs: dict[str, Tensor] = {}
    model.gradient_branch.register_forward_hook(lambda m, args, out: inputs.update(grad=args[0]))
    model.fusion_block.register_forward_hook(lambda m, args, out: inputs.update(fusion=args[0]))
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        model(lr)
        packed = lr.repeat_interleave(4, dim=1)
        trunk, _ = model.sr_trunk(model.shallow_conv(packed))
        upsampled = model.sr_upsampler(trunk)
    torch.testing.assert_close(inputs["grad"], GradientMap()(lr).repeat_interleave(4, dim=1))
    # [gradient features, SR features right after the upsampling layer] (paper 002 sec. 1)
    assert inputs["fusion"].shape == (1, 16, 16, 16)
    torch.testing.assert_close(inputs["fusion"][:, 8:], upsampled)


def test_zero_last_conv_outputs_its_bias() -> None:
    model = UGSR(scale=2, **TINY)
    torch.nn.init.zeros_(model.out_conv.weight)
    with torch.no_grad():
        model.out_conv.bias.copy_(torch.tensor([0.25, 0.5, 0.75]))
        sr = model(torch.rand(1, 3, 8, 8)).sr
    torch.testing.assert_close(sr, torch.tensor([0.25, 0.5, 0.75]).view(1, 3, 1, 1).expand(1, 3, 16, 16))


def test_channels_last_and_bf16_autocast_agree_with_fp32() -> None:
    check_named_outputs_channels_last_and_bf16(UGSR(scale=2, **TINY), torch.rand(1, 3, 12, 12), UGSROutput._fields)
