"""HAN (Niu et al. 2020): layer attention, channel-spatial attention and the published model size."""

import math

import pytest
import torch

from srtk.models.han import HAN, ChannelSpatialAttention, LayerAttention
from tests.models.checks import check_channels_last_and_autocast, check_smoke, parameter_count

TINY = {"num_groups": 2, "blocks_per_group": 2, "num_features": 16, "reduction": 4}


@pytest.mark.parametrize(("scale", "expected", "published"), [(4, 16_071_745, 16.07), (8, 16_219_457, 16.22)])
def test_parameter_count_matches_the_published_size(scale: int, expected: int, published: float) -> None:
    # Paper 003, Table 4 lists HAN at 16.07M (x4) and 16.22M (x8); RCAN x4 (15,592,355) + LAM fusion conv
    # (11 * 64 -> 64, 3x3) + CSAM (3x3x3 conv) + [CSAM, LAM] fusion conv (128 -> 64) + alpha + beta.
    with torch.device("meta"):
        count = parameter_count(HAN(scale=scale))
    assert count == expected
    assert round(count / 1e6, 2) == published
    if scale == 4:
        assert count == 15_592_355 + (11 * 64 * 64 * 9 + 64) + (27 + 1) + (2 * 64 * 64 * 9 + 64) + 2


def test_layer_attention_known_mix() -> None:
    # Three orthogonal groups of squared norm ln 2: energies are ln 2 on the diagonal and 0 elsewhere, so
    # each group keeps weight 2 / (2 + 1 + 1) = 1/2 on itself and 1/4 on each other group.
    groups = torch.zeros(1, 3, 3, 1, 1)
    for index in range(3):
        groups[0, index, index] = math.sqrt(math.log(2.0))
    attention = LayerAttention()
    torch.testing.assert_close(attention(groups), groups)  # alpha starts at 0: identity
    with torch.no_grad():
        attention.alpha.fill_(1.0)
    mix = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]])
    expected = groups + (mix @ groups.flatten(2)).view_as(groups)
    torch.testing.assert_close(attention(groups), expected)


def test_channel_spatial_attention_known_gate() -> None:
    attention = ChannelSpatialAttention()
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(attention(x), x)  # beta starts at 0: identity
    with torch.no_grad():
        attention.conv.weight.zero_()
        attention.conv.bias.zero_()  # gate sigmoid(0) = 1/2 everywhere
        attention.beta.fill_(2.0)
    torch.testing.assert_close(attention(x), x + 2.0 * 0.5 * x)


def test_channel_spatial_attention_mixes_neighbouring_channels() -> None:
    attention = ChannelSpatialAttention()
    with torch.no_grad():
        attention.conv.weight.zero_()
        attention.conv.weight[0, 0, 0, 1, 1] = 1.0  # the gate of channel c reads channel c-1, same pixel
        attention.conv.bias.zero_()
        attention.beta.fill_(1.0)
    x = torch.randn(1, 4, 3, 3)
    previous = torch.cat([torch.zeros(1, 1, 3, 3), x[:, :-1]], dim=1)  # zero padding below channel 0
    torch.testing.assert_close(attention(x), x + torch.sigmoid(previous) * x)


def _with_attention_on(model: HAN) -> HAN:
    with torch.no_grad():  # alpha = beta = 0 at init would leave the attention weights without gradient
        model.layer_attention.alpha.fill_(0.5)
        model.channel_spatial_attention.beta.fill_(0.5)
    return model


def test_trunk_fuses_lam_and_csam_and_taps_the_groups() -> None:
    model = _with_attention_on(HAN(scale=2, **TINY)).eval()
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        shallow = model.shallow(lr)
        first = model.groups[0](shallow)
        second = model.groups[1](first)
        last = model.trunk_conv(second)
        layers = model.layer_attention(torch.stack([first, second, last], dim=1)).flatten(1, 2)
        fused = torch.cat([model.channel_spatial_attention(last), model.layer_fusion(layers)], dim=1)
        trunk, tapped = model.trunk(shallow, taps=(2, 1))
        torch.testing.assert_close(trunk, model.fusion(fused) + shallow)
        torch.testing.assert_close(tapped, [second, first])
        assert model.layer_fusion.in_channels == 3 * TINY["num_features"]


@pytest.mark.parametrize("scale", [2, 4])
def test_smoke(scale: int) -> None:
    check_smoke(_with_attention_on(HAN(scale=scale, **TINY)), torch.rand(2, 3, 16, 16))


def test_channels_last_and_autocast() -> None:
    check_channels_last_and_autocast(_with_attention_on(HAN(**TINY)), torch.rand(1, 3, 16, 16))
