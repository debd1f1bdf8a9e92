"""Parameter, FLOP and MAC counts against closed forms."""

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.models.complexity import FLOPS_PER_MAC, count_flops, count_macs, count_parameters


def test_single_conv_matches_the_closed_form() -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1)
    macs = 8 * 3 * 9 * 16 * 16  # out channels * in channels * kernel area * output pixels
    assert count_macs(conv, (1, 3, 16, 16)) == macs == 55_296
    assert count_flops(conv, (1, 3, 16, 16)) == FLOPS_PER_MAC * macs
    assert count_macs(conv, (4, 3, 16, 16)) == 4 * macs  # linear in the batch
    assert count_parameters(conv) == 8 * 3 * 9 + 8


def test_strided_conv_and_linear() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    expected = 4 * 3 * 9 * 8 * 8 + 4 * 8 * 8 * 10  # stride 2 halves 16x16; then one matrix product
    assert count_macs(model, (1, 3, 16, 16)) == expected


class _ConvThenResize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        # Pixel shuffle, interpolation and activations are free under FlopCounterMode's convention.
        return F.interpolate(self.shuffle(self.conv(x)).relu(), scale_factor=2, mode="bicubic")


def test_only_convolutions_and_products_are_counted() -> None:
    assert count_macs(_ConvThenResize(), (1, 3, 8, 8)) == 12 * 3 * 9 * 8 * 8


class _DataDependent(nn.Module):
    """A forward that reads tensor values cannot run on the meta device: the CPU fallback must count it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:  # .item() on a meta tensor raises
            return self.conv(self.conv.weight.new_ones(1, 3, 4, 4))
        return self.conv(x)


def test_data_dependent_model_falls_back_to_a_real_zero_input() -> None:
    assert count_macs(_DataDependent(), (1, 3, 16, 16)) == 8 * 3 * 9 * 16 * 16  # zeros take the else branch


def test_counting_leaves_the_model_as_it_was() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, (2, 3, 8, 8))
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched
    assert next(model.parameters()).device.type == "cpu"


def test_meta_model_is_counted_without_weights() -> None:
    with torch.device("meta"):
        model = nn.Conv2d(64, 64, 3, padding=1)
    # A 1280x720 activation set would be 236 MB in fp32 here; on meta it costs nothing.
    assert count_macs(model, (1, 64, 720, 1280)) == 64 * 64 * 9 * 720 * 1280


def test_parameters_shared_and_frozen() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(model) == 4 * 4 + 4  # a tied layer counts once
    shared.bias.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 4 * 4
    assert count_parameters(model) == 4 * 4 + 4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_counts_do_not_depend_on_dtype(dtype: torch.dtype) -> None:
    conv = nn.Conv2d(3, 8, 3, padding=1).to(dtype)
    assert count_macs(conv, (1, 3, 16, 16)) == 8 * 3 * 9 * 16 * 16
