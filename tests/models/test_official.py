"""Reading official checkpoints: the canonicalizer, key maps with their used-keys check, the nearest layout."""

from pathlib import Path

import pytest
import torch
from torch import Tensor

from srtk.errors import CheckpointError
from srtk.models import edsr
from srtk.models.checkpoint import OFFICIAL_LAYOUTS, convert_official_checkpoint, nearest_layout
from srtk.models.official import PREFIXES, WRAPPERS, KeyMap, canonicalize, num_indexed, state_shapes
from srtk.models.registry import AUXILIARY, MODELS
from tests.reference import official_state_dict

ONE, ZERO = torch.ones(1), torch.zeros(1)


# ----------------------------------------------------------------------------- canonicalize


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_each_wrapper_is_unwrapped(wrapper: str) -> None:
    state = canonicalize({wrapper: {"conv.weight": ONE}, "iter": 7, "optimizer": {"lr": 0.1}})
    assert list(state) == ["conv.weight"] and torch.equal(state["conv.weight"], ONE)


def test_ema_weights_win_and_dataparallel_prefix_goes() -> None:
    ema, raw = {"module.w": ONE}, {"module.w": ZERO}  # BasicSR saves both; it evaluates and releases the EMA
    assert torch.equal(canonicalize({"params": raw, "params_ema": ema})["w"], ONE)
    assert torch.equal(canonicalize({"params": raw})["w"], ZERO)


def test_wrapper_names_holding_tensors_are_ordinary_keys() -> None:
    state = {"params": ONE, "model": ZERO, "conv.weight": ONE}  # unwrapped only when the value is a mapping
    assert list(canonicalize(state)) == ["params", "model", "conv.weight"]


def test_non_tensor_entries_are_dropped() -> None:
    assert list(canonicalize({"conv.weight": ONE, "epoch": 3, "note": "x", "meta": {"a": ONE}})) == ["conv.weight"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_prefix_is_stripped_only_when_every_key_shares_it(prefix: str) -> None:
    shared = {f"{prefix}head.weight": ONE, f"{prefix}tail.bias": ZERO}
    assert list(canonicalize(shared)) == ["head.weight", "tail.bias"]
    mixed = {**shared, "other.weight": ONE}
    assert list(canonicalize(mixed)) == list(mixed)


def test_esrgan_sequential_model_keys_are_real_keys() -> None:
    # ESRGAN's old generator is an nn.Sequential named `model`: `model.N.` is the layout, not a wrapper.
    sequential = {"model.0.weight": ONE, "model.1.sub.0.RDB1.conv1.0.weight": ONE, "model.10.bias": ZERO}
    assert list(canonicalize(sequential)) == list(sequential)
    wrapped = {f"module.{key}": value for key, value in sequential.items()}
    assert list(canonicalize({"params": wrapped})) == list(sequential)
    lightning = {f"model.{key}": value for key, value in sequential.items()}  # a wrapper named model
    assert list(canonicalize(lightning)) == list(sequential)


def test_nested_prefixes_go_and_canonicalize_is_idempotent() -> None:
    state = canonicalize({"state_dict": {"netG.module.conv.weight": ONE, "netG.module.conv.bias": ZERO}})
    assert list(state) == ["conv.weight", "conv.bias"]
    assert list(canonicalize(state)) == list(state)


# ----------------------------------------------------------------------------- key maps

TOY = KeyMap(
    "toy",
    (
        (r"a\.(\d+)\.(weight|bias)", r"blocks.\1.\2"),  # template
        (r"up(\d+)\.weight", lambda match: f"ups.{int(match[1]) - 1}.weight"),  # function: 1-based officially
        (r"fixed\.kernel", None),  # known, dropped
    ),
)


def test_key_map_renames_by_template_function_and_drop() -> None:
    renamed = TOY.rename({"a.3.weight": ONE, "up1.weight": ZERO, "fixed.kernel": ONE, "odd.weight": ONE})
    assert renamed.tensors.keys() == {"blocks.3.weight", "ups.0.weight"}
    assert renamed.sources == {"blocks.3.weight": "a.3.weight", "ups.0.weight": "up1.weight"}
    assert renamed.unknown == ["odd.weight"]
    assert TOY.known_share(["a.3.weight", "up1.weight", "fixed.kernel", "odd.weight"]) == 0.75


def test_two_keys_for_one_tensor_must_agree() -> None:
    twice = KeyMap("twice", ((r"(?:first|second)\.weight", "conv.weight"),))
    assert torch.equal(twice.rename({"first.weight": ONE, "second.weight": ONE.clone()}).tensors["conv.weight"], ONE)
    with pytest.raises(CheckpointError, match="second.weight and first.weight disagree on conv.weight"):
        twice.rename({"first.weight": ONE, "second.weight": ZERO})


def test_finish_lists_unexpected_missing_and_misshapen_keys_and_names_the_layout() -> None:
    renamed = TOY.rename({"a.0.weight": ONE, "a.9.bias": ONE, "up1.weight": ONE, "odd.weight": ONE})
    expected = {"blocks.0.weight": torch.Size([1]), "ups.0.weight": torch.Size([2]), "blocks.0.bias": torch.Size([1])}
    with pytest.raises(CheckpointError) as error:
        renamed.finish(expected)
    message = str(error.value)
    assert "does not fit the toy layout, the nearest srtk reads" in message
    # unknown to every rule, or known but landing on a tensor the network lacks: both unexpected
    assert "unexpected keys unknown to it (2): odd.weight, a.9.bias" in message
    assert "lacks 1 tensor(s) of srtk's network: blocks.0.bias" in message
    assert "wrong shapes (1): up1.weight (1,) for ups.0.weight (2,)" in message


def test_finish_applies_value_transforms_after_the_check() -> None:
    renamed = TOY.rename({"a.0.weight": torch.full((2,), 3.0)})
    out = renamed.finish({"blocks.0.weight": torch.Size([2])}, {"blocks.0.weight": lambda weight: weight / 3})
    torch.testing.assert_close(out["blocks.0.weight"], torch.ones(2))


def test_long_key_lists_are_cut_and_counted() -> None:
    renamed = TOY.rename({f"odd{index}": ONE for index in range(8)})
    with pytest.raises(CheckpointError, match=r"\(8\): odd0, odd1, odd2, odd3, odd4 \.\.\. \(\+3 more\)"):
        renamed.finish({})


def test_num_indexed_counts_to_the_largest_index() -> None:
    keys = ["blocks.0.w", "blocks.2.w", "other.5.w"]
    assert num_indexed(keys, r"blocks\.(\d+)\.w") == 3  # the gap at 1 will show as a missing tensor
    assert num_indexed(keys, r"none\.(\d+)") == 0


def test_state_shapes_builds_nothing_real() -> None:
    shapes = state_shapes(edsr.EDSR, {"scale": 2, "num_blocks": 1, "num_features": 8})
    assert shapes["head.weight"] == (8, 3, 3, 3) and "mean_shift.rgb_mean" not in shapes
    with pytest.raises(CheckpointError, match="does not build"):
        state_shapes(edsr.EDSR, {"scale": 2, "num_colours": 3})


# ----------------------------------------------------------------------------- the table and the nearest layout


def test_the_table_covers_six_layouts_of_registry_networks() -> None:
    assert [layout.architecture for layout in OFFICIAL_LAYOUTS] == [
        "spsr",
        "rrdbnet",
        "edsr",
        "rcan",
        "vgg-128",
        "pcl-embedding",
    ]
    for layout in OFFICIAL_LAYOUTS:  # SR models load; the rest are converted for training only
        assert (layout.role == "SR model") == (layout.architecture in MODELS)
        assert layout.architecture in MODELS or layout.architecture in AUXILIARY


@pytest.fixture(scope="module")
def edsr_official() -> dict[str, Tensor]:
    return official_state_dict("edsr_baseline")


def test_unexpected_key_is_listed_and_the_layout_named(tmp_path: Path, edsr_official: dict[str, Tensor]) -> None:
    torch.save({**edsr_official, "extra.weight": ZERO}, tmp_path / "extra.pth")
    pattern = r"extra\.pth: does not fit the EDSR-PyTorch EDSR layout.*unexpected keys .*\(1\): extra\.weight"
    with pytest.raises(CheckpointError, match=pattern):
        convert_official_checkpoint(tmp_path / "extra.pth")


def test_missing_key_is_listed_and_the_layout_named(tmp_path: Path, edsr_official: dict[str, Tensor]) -> None:
    torch.save({key: value for key, value in edsr_official.items() if key != "tail.1.bias"}, tmp_path / "cut.pth")
    pattern = r"cut\.pth: does not fit the EDSR-PyTorch EDSR layout.*lacks 1 tensor\(s\).*: reconstruction\.bias"
    with pytest.raises(CheckpointError, match=pattern):
        convert_official_checkpoint(tmp_path / "cut.pth")


def test_undetected_checkpoint_names_the_nearest_layout(tmp_path: Path, edsr_official: dict[str, Tensor]) -> None:
    odd = {**edsr_official, "body.0.body.4.weight": ZERO}  # a third conv per block: not EDSR's block any more
    layout, _, share = nearest_layout(odd)
    assert layout.name == "EDSR-PyTorch EDSR" and share == (len(odd) - 1) / len(odd)
    torch.save(odd, tmp_path / "odd.pth")
    pattern = r"unknown checkpoint layout.*nearest known layout: EDSR-PyTorch EDSR.*body\.0\.body\.4\.weight"
    with pytest.raises(CheckpointError, match=pattern):
        convert_official_checkpoint(tmp_path / "odd.pth")


def test_checkpoint_without_tensors_is_a_clear_error(tmp_path: Path) -> None:
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="empty.pth: holds no tensors"):
        convert_official_checkpoint(tmp_path / "empty.pth")
