"""EDSR (Lim et al. 2017) and its EDSR-PyTorch checkpoint converter: parity with the official outputs."""

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor

from srtk.errors import CheckpointError, ConfigError
from srtk.models import rcan
from srtk.models.blocks import DIV2K_RGB_MEAN, RGBMeanShift
from srtk.models.edsr import EDSR, convert_official, is_official, official_rgb_range
from tests.models.checks import check_channels_last_and_autocast, check_smoke, parameter_count
from tests.reference import official_state_dict, parity_io

TINY = {"num_blocks": 2, "num_features": 8}


def _official_round_trip(name: str, tmp_path: Path) -> dict[str, Tensor]:
    """As a user gets it: the authors' .pth saved by torch and loaded with weights_only."""
    path = tmp_path / f"{name}.pth"
    torch.save(official_state_dict(name), path)
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    ("name", "expected_kwargs", "expected_parameters"),
    [
        # EDSR paper Table 1: baseline 1.5M, EDSR 43M parameters (x4).
        ("edsr_baseline", {"num_blocks": 16, "num_features": 64, "res_scale": 1.0}, 1_517_571),
        pytest.param(
            "edsr_large",
            {"num_blocks": 32, "num_features": 256, "res_scale": 0.1},
            43_089_923,
            marks=pytest.mark.slow,  # ~5 s on two cores: 65 convs of 256 channels
        ),
    ],
)
def test_parity_with_official_edsr(
    name: str, expected_kwargs: dict[str, float], expected_parameters: int, tmp_path: Path
) -> None:
    state_dict = _official_round_trip(name, tmp_path)
    assert is_official(state_dict) and not rcan.is_official(state_dict)
    kwargs, converted = convert_official(state_dict)
    assert kwargs == {"scale": 4, **expected_kwargs}
    model = EDSR(**kwargs)
    model.load_state_dict(converted)  # strict: every srtk key filled, none left over
    assert parameter_count(model) == expected_parameters

    io = parity_io(name)
    with torch.no_grad():
        sr = model.eval()(torch.from_numpy(io["input"]) / 255)  # srtk takes [0, 1]
    expected = torch.from_numpy(io["sr"]) / 255
    torch.testing.assert_close(sr, expected, atol=1e-4 * expected.abs().max().item(), rtol=0)


def _tiny_official(scale: int = 4) -> dict[str, Tensor]:
    """The EDSR-PyTorch layout of the tiny config: rgb_range 255 mean shift, random weights."""

    def weight(*shape: int) -> Tensor:  # unit-gain init keeps activations O(255), like a trained model
        return torch.randn(*shape) / math.sqrt(math.prod(shape[1:]))

    identity = torch.eye(3).view(3, 3, 1, 1)
    mean = 255 * torch.tensor(DIV2K_RGB_MEAN)  # as EDSR-PyTorch's MeanShift stores it
    out = {
        "sub_mean.weight": identity,
        "sub_mean.bias": -mean,
        "add_mean.weight": identity,
        "add_mean.bias": mean,
    }
    features, blocks = TINY["num_features"], TINY["num_blocks"]
    out["head.0.weight"], out["head.0.bias"] = weight(features, 3, 3, 3), torch.randn(features)
    for block in range(blocks):
        for conv in (0, 2):
            out[f"body.{block}.body.{conv}.weight"] = weight(features, features, 3, 3)
            out[f"body.{block}.body.{conv}.bias"] = torch.randn(features)
    out[f"body.{blocks}.weight"], out[f"body.{blocks}.bias"] = (
        weight(features, features, 3, 3),
        torch.randn(features),
    )
    factors = {2: [2], 3: [3], 4: [2, 2], 8: [2, 2, 2]}[scale]
    for stage, factor in enumerate(factors):
        out[f"tail.0.{2 * stage}.weight"] = weight(features * factor**2, features, 3, 3)
        out[f"tail.0.{2 * stage}.bias"] = torch.randn(features * factor**2)
    out["tail.1.weight"], out["tail.1.bias"] = weight(3, features, 3, 3), torch.randn(3)
    return out


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_converter_infers_scale_and_absorbs_the_pixel_range(scale: int) -> None:
    official = _tiny_official(scale)
    kwargs, converted = convert_official(official)
    assert kwargs == {"scale": scale, **TINY, "res_scale": 1.0}
    model = EDSR(**kwargs)
    model.load_state_dict(converted)
    torch.testing.assert_close(converted["head.weight"], official["head.0.weight"] * 255)
    torch.testing.assert_close(converted["head.bias"], official["head.0.bias"])
    torch.testing.assert_close(converted["reconstruction.weight"], official["tail.1.weight"] / 255)
    torch.testing.assert_close(converted["reconstruction.bias"], official["tail.1.bias"] / 255)
    assert len(model.upsampler.stages) == {2: 1, 3: 1, 4: 2, 8: 3}[scale]


def test_converter_res_scale_presets_and_override() -> None:
    official = _tiny_official()
    assert convert_official(official)[0]["res_scale"] == 1.0  # not 256 features: the baseline preset
    assert convert_official(official, res_scale=0.5)[0]["res_scale"] == 0.5


def test_converter_reads_rgb_range_from_the_mean_shift() -> None:
    official = _tiny_official()
    for key in ("sub_mean.bias", "add_mean.bias"):  # a model trained with --rgb_range 1
        official[key] = official[key] / 255
    assert official_rgb_range(official) == 1.0
    _, converted = convert_official(official)
    torch.testing.assert_close(converted["head.weight"], official["head.0.weight"])
    official["add_mean.bias"] = torch.tensor([0.5, 0.5, 0.5])
    official["sub_mean.bias"] = -official["add_mean.bias"]
    with pytest.raises(CheckpointError, match="DIV2K"):
        convert_official(official)


def test_converter_rejects_unknown_keys_and_other_layouts() -> None:
    official = _tiny_official()
    official["body.0.body.4.weight"] = torch.zeros(1)
    assert not is_official(official)
    with pytest.raises(CheckpointError):
        convert_official(official)
    official = _tiny_official()
    official["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="unknown"):
        convert_official(official)
    with pytest.raises(CheckpointError):
        convert_official({"conv_first.weight": torch.zeros(1)})
    official = _tiny_official(scale=2)  # one x5 sub-pixel stage: no EDSR-PyTorch scale
    official["tail.0.0.weight"] = torch.zeros(8 * 5**2, 8, 3, 3)
    official["tail.0.0.bias"] = torch.zeros(8 * 5**2)
    with pytest.raises(CheckpointError, match="supported scale"):
        convert_official(official)


def test_converted_tiny_model_matches_the_official_function() -> None:
    """srtk(x) == official(255 x) / 255, the official forward written out from EDSR-PyTorch's layout."""
    official = _tiny_official()
    kwargs, converted = convert_official(official)
    model = EDSR(**kwargs).eval()
    model.load_state_dict(converted)
    lr = torch.rand(1, 3, 8, 8)

    def conv(x: Tensor, key: str) -> Tensor:
        return torch.nn.functional.conv2d(x, official[f"{key}.weight"], official[f"{key}.bias"], padding=1)

    x = conv(255 * lr + official["sub_mean.bias"].view(1, 3, 1, 1), "head.0")
    res = x
    for block in range(TINY["num_blocks"]):
        res = res + conv(torch.relu(conv(res, f"body.{block}.body.0")), f"body.{block}.body.2")
    res = conv(res, f"body.{TINY['num_blocks']}") + x
    for stage in range(2):
        res = torch.nn.functional.pixel_shuffle(conv(res, f"tail.0.{2 * stage}"), 2)
    expected = (conv(res, "tail.1") + official["add_mean.bias"].view(1, 3, 1, 1)) / 255
    with torch.no_grad():
        torch.testing.assert_close(model(lr), expected, atol=1e-5, rtol=1e-4)


def test_taps_are_the_block_outputs() -> None:
    model = EDSR(scale=2, **TINY).eval()
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        shallow = model.shallow(lr)
        first = model.blocks[0](shallow)
        second = model.blocks[1](first)
        tapped = model.features(lr, taps=(2, 1))
        torch.testing.assert_close(tapped[0], second)
        torch.testing.assert_close(tapped[1], first)
        trunk, _ = model.trunk(shallow)
        torch.testing.assert_close(trunk, model.trunk_conv(second) + shallow)
        torch.testing.assert_close(model(lr), model.reconstruct(model.upsample(trunk)))
    with pytest.raises(ConfigError, match="outside 1..2"):
        model.features(lr, taps=(3,))


def test_zero_body_returns_the_dataset_mean() -> None:
    """A zeroed last conv outputs exactly the DIV2K mean: the add-back is in [0, 1] units."""
    model = EDSR(scale=2, **TINY)
    with torch.no_grad():
        model.reconstruction.weight.zero_()
        model.reconstruction.bias.zero_()
        sr = model(torch.rand(1, 3, 4, 4))
    torch.testing.assert_close(sr, RGBMeanShift().rgb_mean.expand_as(sr))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_smoke(scale: int) -> None:
    check_smoke(EDSR(scale=scale, res_scale=0.1, **TINY), torch.rand(2, 3, 16, 16))


def test_channels_last_and_autocast() -> None:
    check_channels_last_and_autocast(EDSR(**TINY), torch.rand(1, 3, 16, 16))
