"""SRResNet (Ledig et al. 2017, Fig. 4): BN-free by default (ESRGAN framework), with BN as "srresnet-bn"."""

import pytest
import torch
from torch import nn

from srtk.errors import ConfigError
from srtk.models.registry import build_model
from srtk.models.srresnet import SRResNet
from tests.models.checks import check_channels_last_and_autocast, check_smoke, parameter_count

TINY = {"num_blocks": 2, "num_features": 8}


def test_parameter_count_from_the_layer_list() -> None:
    # Ledig et al. Fig. 4, counted by hand at x4 (weights + biases; one PReLU slope per activation):
    head = 9 * 9 * 3 * 64 + 64 + 1  # k9n64s1 + PReLU
    block = 2 * (3 * 3 * 64 * 64 + 64) + 1  # two k3n64s1 + PReLU
    trunk_conv = 3 * 3 * 64 * 64 + 64
    upsample = 2 * (3 * 3 * 64 * 256 + 256 + 1)  # two (k3n256s1, shuffle x2, PReLU)
    last = 9 * 9 * 64 * 3 + 3  # k9n3s1
    expected = head + 16 * block + trunk_conv + upsample + last
    assert expected == 1_545_238  # the "1.5M" SRResNet
    with torch.device("meta"):
        assert parameter_count(SRResNet()) == expected
        # 33 BNs (two per block + the trunk's), each with a scale and a shift per channel
        assert parameter_count(SRResNet(batch_norm=True)) == expected + 33 * 2 * 64


def test_batch_norm_at_its_initial_statistics_is_the_bn_free_network() -> None:
    plain = SRResNet(scale=2, **TINY).eval()
    with_bn = SRResNet(scale=2, batch_norm=True, **TINY).eval()
    missing, unexpected = with_bn.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and all("norm" in key for key in missing)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules()) == 2 * TINY["num_blocks"] + 1
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():  # eval BN with running mean 0, var 1 only divides by sqrt(1 + eps)
        torch.testing.assert_close(with_bn(lr), plain(lr), atol=1e-4, rtol=1e-4)


def test_registry_srresnet_bn_is_the_srgan_generator_with_batch_norm() -> None:
    # Ledig et al. Fig. 4: BN after both convs of every residual block and after the trunk conv, none elsewhere.
    with torch.device("meta"):
        srgan, plain = build_model("srresnet-bn"), build_model("srresnet")
    norms = [name for name, module in srgan.named_modules() if isinstance(module, nn.BatchNorm2d)]
    expected = [f"blocks.{i}.norm{k}" for i in range(16) for k in (1, 2)] + ["trunk_norm"]
    assert norms == expected
    assert not any(isinstance(module, nn.BatchNorm2d) for module in plain.modules())
    assert parameter_count(srgan) == parameter_count(plain) + 33 * 2 * 64
    assert srgan.scale == 4 and len(srgan.blocks) == 16


def test_taps_and_global_skip() -> None:
    model = SRResNet(scale=2, **TINY).eval()
    lr = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        shallow = model.shallow(lr)
        first = model.blocks[0](shallow)
        second = model.blocks[1](first)
        torch.testing.assert_close(model.features(lr, taps=(1, 2)), [first, second])
        trunk, _ = model.trunk(shallow)
        torch.testing.assert_close(trunk, model.trunk_conv(second) + shallow)
        torch.testing.assert_close(model(lr), model.reconstruct(model.upsample(trunk)))
    with pytest.raises(ConfigError, match="outside"):
        model.features(lr, taps=(0,))


@pytest.mark.parametrize(("scale", "batch_norm"), [(2, False), (4, False), (4, True), (3, False)])
def test_smoke(scale: int, batch_norm: bool) -> None:
    model = SRResNet(scale=scale, batch_norm=batch_norm, **TINY)
    check_smoke(model, torch.rand(2, 3, 16, 16))
    assert len(model.upsampler.stages) == {2: 1, 3: 1, 4: 2}[scale]


def test_channels_last_and_autocast() -> None:
    check_channels_last_and_autocast(SRResNet(**TINY), torch.rand(1, 3, 16, 16))
