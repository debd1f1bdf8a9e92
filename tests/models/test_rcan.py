"""RCAN (Zhang et al. 2018) and its converter for the authors' checkpoints: parity with their outputs."""

from pathlib import Path

import pytest
import torch

from srtk.errors import CheckpointError
from srtk.models import edsr
from srtk.models.rcan import RCAN, convert_official, is_official
from tests.models.checks import check_channels_last_and_autocast, check_smoke, parameter_count
from tests.reference import official_state_dict, parity_io

TINY = {"num_groups": 2, "blocks_per_group": 2, "num_features": 16, "reduction": 4}


@pytest.mark.slow  # 200 RCABs on a 64x64 input: a few seconds on two cores
def test_parity_with_official_rcan(tmp_path: Path) -> None:
    path = tmp_path / "rcan.pth"
    torch.save(official_state_dict("rcan"), path)
    state_dict = torch.load(path, weights_only=True)
    assert is_official(state_dict) and not edsr.is_official(state_dict)
    kwargs, converted = convert_official(state_dict)
    assert kwargs == {
        "scale": 4,
        "num_groups": 10,
        "blocks_per_group": 20,
        "num_features": 64,
        "reduction": 16,
    }
    model = RCAN(**kwargs)
    model.load_state_dict(converted)  # strict
    # 15.6M at x4 (as RCAN is usually quoted, e.g. HAN/SAN tables); counted from the official layout.
    assert parameter_count(model) == 15_592_355

    io = parity_io("rcan")
    with torch.no_grad():
        sr = model.eval()(torch.from_numpy(io["input"]) / 255)
    expected = torch.from_numpy(io["sr"]) / 255
    torch.testing.assert_close(sr, expected, atol=1e-4 * expected.abs().max().item(), rtol=0)

    han_like = dict(state_dict, **{"la.gamma": torch.zeros(1)})  # HAN extends RCAN's keys
    assert not is_official(han_like)
    with pytest.raises(CheckpointError):
        convert_official(han_like)


def test_default_parameter_count_without_building() -> None:
    with torch.device("meta"):  # no memory, no init: only the shapes of the paper's configuration
        assert parameter_count(RCAN(scale=2)) == 15_444_643
        assert parameter_count(RCAN(scale=4)) == 15_592_355


def _tiny_official(model: RCAN) -> dict[str, torch.Tensor]:
    """The authors' key layout for a tiny RCAN, filled from `model` with the [0, 255] range put back."""
    sd = model.state_dict()
    mean = 255 * model.mean_shift.rgb_mean.flatten()
    identity = torch.eye(3).view(3, 3, 1, 1)
    out = {
        "sub_mean.weight": identity,
        "sub_mean.bias": -mean,
        "add_mean.weight": identity,
        "add_mean.bias": mean,
    }
    out["head.0.weight"], out["head.0.bias"] = sd["head.weight"] / 255, sd["head.bias"]
    names = {"conv1": "body.0", "conv2": "body.2", "attention.down": "body.3.conv_du.0"}
    names["attention.up"] = "body.3.conv_du.2"
    for group in range(TINY["num_groups"]):
        for block in range(TINY["blocks_per_group"]):
            for ours, official in names.items():
                for param in ("weight", "bias"):
                    out[f"body.{group}.body.{block}.{official}.{param}"] = sd[
                        f"groups.{group}.blocks.{block}.{ours}.{param}"
                    ]
        for param in ("weight", "bias"):
            out[f"body.{group}.body.{TINY['blocks_per_group']}.{param}"] = sd[f"groups.{group}.conv.{param}"]
    for param in ("weight", "bias"):
        out[f"body.{TINY['num_groups']}.{param}"] = sd[f"trunk_conv.{param}"]
        out[f"tail.0.0.{param}"] = sd[f"upsampler.stages.0.conv.{param}"]
        out[f"tail.1.{param}"] = sd[f"reconstruction.{param}"] * 255
    return out


def test_converter_infers_the_tiny_config_and_round_trips() -> None:
    model = RCAN(scale=2, **TINY).eval()
    official = _tiny_official(model)
    assert is_official(official)
    kwargs, converted = convert_official(official)
    assert kwargs == {"scale": 2, **TINY}
    rebuilt = RCAN(**kwargs).eval()
    rebuilt.load_state_dict(converted)
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(lr), model(lr), atol=1e-5, rtol=1e-5)
    official.pop("body.0.body.1.body.3.conv_du.2.bias")
    with pytest.raises(CheckpointError, match="lacks"):
        convert_official(official)


def test_taps_are_the_group_outputs() -> None:
    model = RCAN(scale=2, **TINY).eval()
    assert model.num_blocks == TINY["num_groups"]
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        shallow = model.shallow(lr)
        first = model.groups[0](shallow)
        second = model.groups[1](first)
        torch.testing.assert_close(model.features(lr, taps=(1, 2)), [first, second])
        trunk, _ = model.trunk(shallow)
        torch.testing.assert_close(trunk, model.trunk_conv(second) + shallow)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_smoke(scale: int) -> None:
    check_smoke(RCAN(scale=scale, **TINY), torch.rand(2, 3, 16, 16))


def test_channels_last_and_autocast() -> None:
    check_channels_last_and_autocast(RCAN(**TINY), torch.rand(1, 3, 16, 16))
