"""RRDBNet (ESRGAN): blocks, stages, taps, official-checkpoint layouts and parity with BasicSR."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from srtk.errors import CheckpointError, ConfigError
from srtk.models.rrdbnet import (
    RRDB,
    ResidualDenseBlock,
    RRDBNet,
    convert_official,
    is_official,
)
from tests.reference import official_state_dict, parity_io, parity_spec

TINY = {"num_features": 8, "num_blocks": 2, "growth_channels": 4}


def tiny(**overrides: int) -> RRDBNet:
    return RRDBNet(**{**TINY, **overrides})


def conv_params(in_channels: int, out_channels: int, kernel: int = 3) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


def rrdbnet_params(f: int, blocks: int, growth: int, stages: int, in_ch: int = 3, out_ch: int = 3) -> int:
    """ESRGAN's parameter count written out from its figure (5-conv dense blocks, 3 per RRDB)."""
    dense = sum(conv_params(f + i * growth, growth) for i in range(4)) + conv_params(f + 4 * growth, f)
    return (
        conv_params(in_ch, f)
        + blocks * 3 * dense
        + conv_params(f, f)  # trunk conv
        + stages * conv_params(f, f)
        + conv_params(f, f)  # HR conv
        + conv_params(f, out_ch)
    )


# ----------------------------------------------------------------------------- test-side renamers
# srtk -> BasicSR names, then BasicSR -> the two older ESRGAN layouts (written independently of the
# converter's rules so that a shared mistake cannot hide).


def to_basicsr(state: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"residual_trunk\.blocks\.(\d+)\.dense_blocks\.(\d)\.convs\.(\d)\.(\w+)", key)
        if m:
            out[f"body.{m[1]}.rdb{int(m[2]) + 1}.conv{int(m[3]) + 1}.{m[4]}"] = value
            continue
        m = re.fullmatch(r"upsampler\.convs\.(\d)\.(\w+)", key)
        if m:
            out[f"conv_up{int(m[1]) + 1}.{m[2]}"] = value
            continue
        module, param = key.rsplit(".", 1)
        names = {
            "shallow_conv": "conv_first",
            "residual_trunk.conv": "conv_body",
            "hr_conv": "conv_hr",
            "out_conv": "conv_last",
        }
        out[f"{names[module]}.{param}"] = value
    return out


def basicsr_to_esrgan(state: dict[str, Tensor]) -> dict[str, Tensor]:
    renames = [
        (r"body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2."),
        (r"conv_body\.", "trunk_conv."),
        (r"conv_up(\d)\.", r"upconv\1."),
        (r"conv_hr\.", "HRconv."),
    ]
    out = {}
    for key, value in state.items():
        for pattern, repl in renames:
            key = re.sub(rf"^{pattern}", repl, key)
        out[key] = value
    return out


def basicsr_to_sequential(state: dict[str, Tensor]) -> dict[str, Tensor]:
    num_blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("body."))
    num_ups = sum(1 for k in state if re.fullmatch(r"conv_up\d\.weight", k))
    out = {}
    for key, value in state.items():
        module, param = key.rsplit(".", 1)
        m = re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)", module)
        if m:
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{param}"] = value
        elif module.startswith("conv_up"):
            out[f"model.{3 * int(module[-1])}.{param}"] = value
        else:
            index = {
                "conv_first": "0",
                "conv_body": f"1.sub.{num_blocks}",
                "conv_hr": str(3 * num_ups + 2),
                "conv_last": str(3 * num_ups + 4),
            }[module]
            out[f"model.{index}.{param}"] = value
    return out


def save_and_load(state: dict[str, Tensor], path: Path) -> dict:
    torch.save(state, path)
    return torch.load(path, weights_only=True)


# ----------------------------------------------------------------------------- blocks


def test_dense_block_with_zero_last_conv_is_identity() -> None:
    block = ResidualDenseBlock(num_features=8, growth_channels=4)
    torch.nn.init.zeros_(block.convs[-1].weight)
    torch.nn.init.zeros_(block.convs[-1].bias)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_rrdb_scales_residual_by_0_2() -> None:
    block = RRDB(num_features=8, growth_channels=4)
    x = torch.randn(1, 8, 6, 6)
    inner = block.dense_blocks(x)
    torch.testing.assert_close(block(x), x + 0.2 * inner)
    assert [len(dense.convs) for dense in block.dense_blocks] == [5, 5, 5]
    assert [conv.in_channels for conv in block.dense_blocks[0].convs] == [8, 12, 16, 20, 24]


@pytest.mark.parametrize("scale", [1, 2, 4, 8])
def test_parameter_count_formula(scale: int) -> None:
    model = tiny(scale=scale)
    count = sum(p.numel() for p in model.parameters())
    assert count == rrdbnet_params(8, 2, 4, stages=int(math.log2(scale)))


def test_full_size_parameter_count_matches_esrgan() -> None:
    model = RRDBNet()
    count = sum(p.numel() for p in model.parameters())
    assert count == rrdbnet_params(64, 23, 32, stages=2) == 16_697_987  # ESRGAN x4: 16.7M


def test_full_size_parameter_count_matches_basicsr_spec() -> None:
    spec = parity_spec("rrdbnet_basicsr")
    official = sum(math.prod(entry["shape"]) for entry in spec["state_dict"])
    assert sum(p.numel() for p in RRDBNet().parameters()) == official


def test_scale_must_be_power_of_two() -> None:
    with pytest.raises(ConfigError):
        tiny(scale=3)


# ----------------------------------------------------------------------------- forward / stages


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_smoke_forward_backward(scale: int) -> None:
    model = tiny(scale=scale)
    lr = torch.rand(2, 3, 16, 16)
    sr = model(lr)
    assert sr.shape == (2, 3, 16 * scale, 16 * scale)
    assert torch.isfinite(sr).all()
    sr.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_stages_compose_to_forward_and_taps_are_block_outputs() -> None:
    model = tiny(num_blocks=4)
    lr = torch.rand(1, 3, 16, 16)
    shallow = model.shallow(lr)
    trunk, tapped = model.trunk(shallow, taps=(2, 4))
    torch.testing.assert_close(model.reconstruct(model.upsample(trunk)), model(lr))
    x = shallow
    manual = []
    for block in model.residual_trunk.blocks:
        x = block(x)
        manual.append(x)
    torch.testing.assert_close(tapped[0], manual[1])
    torch.testing.assert_close(tapped[1], manual[3])
    torch.testing.assert_close(trunk, shallow + model.residual_trunk.conv(manual[3]))
    torch.testing.assert_close(model.features(lr, (4, 2))[0], manual[3])
    with pytest.raises(ConfigError):
        model.trunk(shallow, taps=(5,))


def test_input_unshuffle_folds_lr_into_channels() -> None:
    model = tiny(scale=2, input_unshuffle=2)
    assert model.shallow_conv.in_channels == 12 and len(model.upsampler.convs) == 2
    lr = torch.rand(1, 3, 16, 16)
    assert model(lr).shape == (1, 3, 32, 32)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pixel_unshuffle(lr, 2),
        model.shallow_conv.weight,
        model.shallow_conv.bias,
        padding=1,
    )
    torch.testing.assert_close(model.shallow(lr), expected)


def test_channels_last_and_bf16_autocast_agree_with_fp32() -> None:
    model = tiny().eval()
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(lr)
        channels_last = model.to(memory_format=torch.channels_last)(lr.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(lr)
    torch.testing.assert_close(channels_last, ref, rtol=1e-4, atol=1e-5)
    assert (half.float() - ref).abs().max() <= 0.05 * ref.abs().max()


def previous_dense_forward(block: ResidualDenseBlock, x: Tensor) -> Tensor:
    """The dense block as it was before issue 12: a copying torch.cat([x]) and an out-of-place LeakyReLU."""
    feats = [x]
    for conv in block.convs[:-1]:
        feats.append(torch.nn.functional.leaky_relu(conv(torch.cat(feats, dim=1)), block.act.negative_slope))
    return x + block.residual_scale * block.convs[-1](torch.cat(feats, dim=1))


def test_dense_block_is_bit_identical_to_the_previous_implementation() -> None:
    torch.manual_seed(0)
    block = ResidualDenseBlock(num_features=8, growth_channels=4)
    x = torch.randn(2, 8, 12, 12, requires_grad=True)
    new = block(x)
    old = previous_dense_forward(block, x)
    torch.testing.assert_close(new, old, rtol=0, atol=0)
    (grad_new,) = torch.autograd.grad(new.square().sum(), x)  # the in-place activation keeps gradients exact
    (grad_old,) = torch.autograd.grad(old.square().sum(), x)
    torch.testing.assert_close(grad_new, grad_old, rtol=0, atol=0)


# ----------------------------------------------------------------------------- official checkpoints


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("layout", ["basicsr", "esrgan", "sequential"])
def test_every_layout_round_trips(tmp_path: Path, layout: str, scale: int) -> None:
    model = tiny(scale=scale).eval()
    official = to_basicsr(model.state_dict())
    official = {"basicsr": dict, "esrgan": basicsr_to_esrgan, "sequential": basicsr_to_sequential}[layout](official)
    loaded = save_and_load(official, tmp_path / "official.pth")
    assert is_official(loaded)
    config, state = convert_official(loaded)
    assert config == {"scale": scale, "in_channels": 3, "out_channels": 3, **TINY, "input_unshuffle": 1}
    clone = RRDBNet(**config)
    clone.load_state_dict(state)
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(clone.eval()(lr), model(lr), rtol=0, atol=0)


def test_basicsr_x2_checkpoint_infers_unshuffle(tmp_path: Path) -> None:
    model = tiny(scale=2, input_unshuffle=2).eval()
    loaded = save_and_load({"params_ema": to_basicsr(model.state_dict())}, tmp_path / "x2.pth")
    config, state = convert_official(loaded)
    assert config["scale"] == 2 and config["input_unshuffle"] == 2 and config["in_channels"] == 3
    clone = RRDBNet(**config)
    clone.load_state_dict(state)
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(clone.eval()(lr), model(lr), rtol=0, atol=0)


def test_official_layout_detection_and_errors() -> None:
    official = to_basicsr(tiny().state_dict())
    assert not is_official(tiny().state_dict())  # srtk's own names are not an official layout
    spsr_like = {**basicsr_to_sequential(official), "b_fea_conv.0.weight": torch.zeros(1)}
    assert not is_official(spsr_like)  # the SPSR generator shares the sequential prefix
    with pytest.raises(CheckpointError):
        convert_official(tiny().state_dict())
    with pytest.raises(CheckpointError, match="unexpected keys"):
        convert_official({**official, "conv_extra.weight": torch.zeros(1)})


@pytest.fixture(scope="module")
def basicsr_official() -> dict[str, Tensor]:
    return official_state_dict("rrdbnet_basicsr")  # 16.7M recipe numbers: build once per module


def test_old_esrgan_names_of_full_checkpoint_convert_identically(basicsr_official: dict[str, Tensor]) -> None:
    basicsr = basicsr_official
    config, state = convert_official(basicsr)
    for rename in (basicsr_to_esrgan, basicsr_to_sequential):
        other_config, other_state = convert_official(rename(basicsr))
        assert other_config == config
        assert other_state.keys() == state.keys()
        assert all(torch.equal(other_state[key], state[key]) for key in state)


@pytest.mark.slow
def test_parity_with_basicsr_rrdbnet(tmp_path: Path, basicsr_official: dict[str, Tensor]) -> None:
    loaded = save_and_load(basicsr_official, tmp_path / "RRDB_x4.pth")
    config, state = convert_official(loaded)
    assert config == {
        "scale": 4,
        "in_channels": 3,
        "out_channels": 3,
        "num_features": 64,
        "num_blocks": 23,
        "growth_channels": 32,
        "input_unshuffle": 1,
    }
    model = RRDBNet(**config).eval()
    model.load_state_dict(state)
    io = parity_io("rrdbnet_basicsr")
    with torch.inference_mode():
        sr = model(torch.from_numpy(io["input"])).numpy()
    reference = io["sr"]
    assert sr.shape == reference.shape
    assert np.abs(sr - reference).max() <= 1e-4 * np.abs(reference).max()
