"""SPSR generator: generic wrapping of any SRBackbone, stage wiring, official checkpoint and parity."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from srtk.errors import CheckpointError
from srtk.models.backbone import SRBackbone
from srtk.models.gradient import GradientMap
from srtk.models.rrdbnet import RRDBNet
from srtk.models.spsr import SPSR, SPSROutput, convert_official, is_official, spsr_rrdbnet
from tests.models.checks import check_named_outputs_channels_last_and_bf16
from tests.reference import official_state_dict, parity_io, parity_spec

TINY = {"num_features": 8, "num_blocks": 4, "growth_channels": 4}


class PlainConvBackbone(SRBackbone):
    """A stand-in that shares nothing with RRDBNet: ReLU conv blocks and a pixel-shuffle upsampler."""

    def __init__(self, *, scale: int = 2, num_features: int = 8, num_blocks: int = 4, out_channels: int = 8) -> None:
        super().__init__()
        self.scale, self.num_features, self.num_blocks, self.out_channels = (
            scale,
            num_features,
            num_blocks,
            out_channels,
        )
        self.head = nn.Conv2d(3, num_features, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(num_features, num_features, 3, padding=1), nn.ReLU()) for _ in range(num_blocks)
        )
        self.up = nn.Sequential(nn.Conv2d(num_features, num_features * scale**2, 3, padding=1), nn.PixelShuffle(scale))
        self.tail = nn.Conv2d(num_features, out_channels, 3, padding=1)

    def shallow(self, lr: Tensor) -> Tensor:
        return self.head(lr)

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        x, tapped = shallow, {}
        for index, block in enumerate(self.blocks, start=1):
            x = block(x)
            tapped[index] = x
        return x + shallow, [tapped[i] for i in taps]

    def upsample(self, trunk: Tensor) -> Tensor:
        return self.up(trunk)

    def reconstruct(self, hr_feats: Tensor) -> Tensor:
        return self.tail(hr_feats)


def assert_every_parameter_learns(model: nn.Module) -> None:
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_wraps_a_non_rrdb_backbone_and_feeds_it_taps() -> None:
    backbone = PlainConvBackbone(scale=2, num_blocks=4)
    model = SPSR(backbone=backbone, num_taps=2)
    assert model.taps == (2, 4)
    seen: list[Tensor] = []
    model.gradient_branch.register_forward_hook(lambda module, args, out: seen.extend(args[1]))
    lr = torch.rand(2, 3, 16, 16)
    out = model(lr)
    assert isinstance(out, SPSROutput)
    assert out.sr.shape == out.grad_branch.shape == (2, 3, 32, 32)
    assert out.lr_grad.shape == (2, 3, 16, 16)
    for got, want in zip(seen, backbone.features(lr, (2, 4)), strict=True):
        torch.testing.assert_close(got, want)
    (out.sr.square().mean() + out.grad_branch.abs().mean()).backward()
    assert_every_parameter_learns(model)


def test_rgb_backbones_lose_their_reconstruction_layer() -> None:
    # Paper 000 sec. 3.2: the last RGB reconstruction layer is removed, whatever the backbone (here EDSR).
    from srtk.models.edsr import EDSR

    backbone = EDSR(scale=2, num_blocks=4, num_features=8)
    model = SPSR(backbone=backbone, growth_channels=4)
    assert not model.reconstructs_features and model.taps == (1, 2, 3, 4)
    lr = torch.rand(1, 3, 8, 8)
    out = model(lr)
    assert out.sr.shape == (1, 3, 16, 16)
    (out.sr.square().mean() + out.grad_branch.abs().mean()).backward()
    assert backbone.reconstruction.weight.grad is None  # dropped: it takes no part
    assert all(p.grad is not None for n, p in model.named_parameters() if "reconstruction" not in n)
    assert SPSR(backbone=RRDBNet(**TINY)).reconstructs_features is False
    assert SPSR(backbone=RRDBNet(**{**TINY, "out_channels": TINY["num_features"]})).reconstructs_features


def test_default_taps_are_blocks_5_10_15_20() -> None:
    assert SPSR(backbone=RRDBNet(num_features=8, num_blocks=23, growth_channels=4, out_channels=8)).taps == (
        5,
        10,
        15,
        20,
    )


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_smoke_forward_backward(scale: int) -> None:
    model = spsr_rrdbnet(scale=scale, **TINY)
    lr = torch.rand(1, 3, 8, 8)
    out = model(lr)
    assert out.sr.shape == out.grad_branch.shape == (1, 3, 8 * scale, 8 * scale)
    assert all(torch.isfinite(t).all() for t in out)
    torch.testing.assert_close(out.lr_grad, GradientMap()(lr), rtol=0, atol=0)
    (out.sr.square().mean() + out.grad_branch.square().mean()).backward()
    assert_every_parameter_learns(model)


def test_gradient_branch_features_reach_the_sr_output() -> None:
    """Fig. 11 of paper 000: zeroing the gradient branch's features changes the SR output."""
    model = spsr_rrdbnet(scale=2, **TINY).eval()
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        full = model(lr).sr
        trunk, _ = model.backbone.trunk(model.backbone.shallow(lr))
        sr_feats = model.backbone.reconstruct(model.backbone.upsample(trunk))
        sr_only = model.fusion(torch.zeros_like(sr_feats), sr_feats)
        nn.init.zeros_(model.gradient_branch.feature_conv.weight)
        nn.init.zeros_(model.gradient_branch.feature_conv.bias)
        torch.testing.assert_close(model(lr).sr, sr_only, rtol=0, atol=0)
    assert (full - sr_only).abs().max() > 1e-4


def test_channels_last_and_bf16_autocast_agree_with_fp32() -> None:
    check_named_outputs_channels_last_and_bf16(
        spsr_rrdbnet(scale=2, **TINY), torch.rand(1, 3, 12, 12), SPSROutput._fields
    )


# ----------------------------------------------------------------------------- official checkpoint


@pytest.fixture(scope="module")
def official() -> dict[str, Tensor]:
    return official_state_dict("spsr_official")  # 25M recipe numbers: build once per module


def test_full_size_parameter_count_matches_official_generator() -> None:
    spec = parity_spec("spsr_official")
    trainable = sum(math.prod(e["shape"]) for e in spec["state_dict"] if e["init"] == "recipe")
    model = spsr_rrdbnet()
    assert sum(p.numel() for p in model.parameters()) == trainable == 24_796_230
    assert len(model.state_dict()) == sum(1 for e in spec["state_dict"] if e["init"] == "recipe")


def test_convert_official_infers_config_and_fills_every_tensor(official: dict[str, Tensor]) -> None:
    assert is_official(official) and is_official({"params": official})
    config, state = convert_official(official)
    spec_config = parity_spec("spsr_official")["config"]
    assert config == {
        "scale": spec_config["upscale"],
        "in_channels": spec_config["in_nc"],
        "out_channels": spec_config["out_nc"],
        "num_features": spec_config["nf"],
        "num_blocks": spec_config["nb"],
        "growth_channels": spec_config["gc"],
        "num_taps": 4,
    }
    spsr_rrdbnet(**config).load_state_dict(state)  # strict: every srtk tensor comes from the checkpoint
    # The authors store the SR branch's HR conv twice (model.8 and HR_conv0_new.0): one tensor here.
    assert torch.equal(state["backbone.hr_conv.weight"], official["HR_conv0_new.0.weight"])


def test_convert_official_rejects_other_layouts(official: dict[str, Tensor]) -> None:
    assert not is_official(spsr_rrdbnet(**TINY).state_dict())
    with pytest.raises(CheckpointError):
        convert_official(spsr_rrdbnet(**TINY).state_dict())
    broken = dict(official)
    broken["get_g_nopadding.weight_h"] = torch.ones(1, 1, 3, 3)
    with pytest.raises(CheckpointError, match="central-difference"):
        convert_official(broken)
    with pytest.raises(CheckpointError, match="unexpected keys"):
        convert_official({**official, "b_extra.0.weight": torch.zeros(1)})


@pytest.mark.slow
def test_parity_with_official_spsr_generator(tmp_path: Path, official: dict[str, Tensor]) -> None:
    path = tmp_path / "SPSR.pth"
    torch.save(official, path)
    config, state = convert_official(torch.load(path, weights_only=True))
    model = spsr_rrdbnet(**config).eval()
    model.load_state_dict(state)
    io = parity_io("spsr_official")
    with torch.inference_mode():
        out = model(torch.from_numpy(io["input"]))
    # The official forward returns (grad_branch, sr, lr_grad); ours names them.
    for name in ("sr", "grad_branch", "lr_grad"):
        got, want = getattr(out, name).numpy(), io[name]
        assert got.shape == want.shape, name
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), name
