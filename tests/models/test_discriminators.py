"""VGG-style critics (D_I, D_GM, D_SF of SPSR) and the U-Net discriminator of paper 002."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import CheckpointError, ConfigError
from srtk.models.checkpoint import load_srtk_checkpoint
from srtk.models.discriminators import (
    SRGANDiscriminator,
    UNetDiscriminator,
    UNetOutput,
    VGGDiscriminator,
    convert_official,
    is_official,
)
from srtk.models.gradient import GradientMap
from srtk.models.registry import build_model, convert_official_to_srtk, load_model
from tests.models.checks import assert_trains, check_all_outputs_channels_last_and_bf16

TINY_VGG = {"num_features": 8, "num_stages": 2, "input_size": 16, "hidden_features": 16}
TINY_UNET = {"num_features": 8, "num_levels": 2}


def test_vgg128_parameter_count_matches_the_esrgan_layer_list() -> None:
    # ESRGAN VGG-128, counted by hand: first conv 3->64 (3x3, bias); then per stage a 3x3 conv and a 4x4
    # stride-2 conv, both bias-free and followed by BN (2 parameters per channel); FC 512*4*4 -> 100 -> 1.
    widths = [64, 128, 256, 512, 512]
    expected = 3 * 64 * 9 + 64  # conv0_0
    expected += 64 * 64 * 16 + 2 * 64  # conv0_1 + BN
    for prev, width in zip(widths, widths[1:], strict=False):
        expected += prev * width * 9 + 2 * width + width * width * 16 + 2 * width
    expected += 512 * 16 * 100 + 100 + 100 + 1
    assert expected == 14_499_401
    assert sum(p.numel() for p in VGGDiscriminator().parameters()) == expected
    # The ESRGAN/SPSR code's layout also gives every BN-followed conv a bias: 9 convs, 2880 more channels.
    old_layout = VGGDiscriminator(conv_bias=True)
    assert sum(p.numel() for p in old_layout.parameters()) == expected + 64 + 2 * (128 + 256 + 512 + 512)


def test_structure_discriminator_sees_nse_features_at_a_quarter_of_the_patch() -> None:
    d_sf = VGGDiscriminator(in_channels=32, input_size=32, num_stages=3)  # D_SF, paper 000 sec. 4.3
    assert d_sf.features[0].conv.in_channels == 32
    assert d_sf.classifier.hidden.in_features == 256 * 4 * 4  # still a 4x4 map before the classifier
    assert d_sf(torch.rand(2, 32, 32, 32)).shape == (2, 1)


@pytest.mark.parametrize(
    "config",
    [TINY_VGG, {**TINY_VGG, "in_channels": 4, "num_stages": 3, "input_size": 24, "conv_bias": True}],
)
def test_vgg_discriminator_smoke(config: dict) -> None:
    model = VGGDiscriminator(**config)
    size = config["input_size"]
    x = torch.rand(3, config.get("in_channels", 3), size, size)
    logits = model(x)
    assert logits.shape == (3, 1)
    assert_trains(model, logits.mean())


def test_gradient_discriminator_judges_gradient_maps() -> None:
    d_gm = VGGDiscriminator(**TINY_VGG)  # D_GM of paper 000 eqs. 8-9: the VGG critic applied to M(I)
    img = torch.rand(2, 3, 16, 16, requires_grad=True)
    logits = d_gm(GradientMap()(img))
    assert logits.shape == (2, 1)
    logits.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0  # the generator is reached through M


def test_vgg_discriminator_rejects_wrong_sizes_clearly() -> None:
    model = VGGDiscriminator(**TINY_VGG)
    with pytest.raises(ConfigError, match=r"built for 16x16 inputs, got 32x32"):
        model(torch.rand(1, 3, 32, 32))
    with pytest.raises(ConfigError, match="at least 2\\*\\*num_stages = 8"):
        VGGDiscriminator(num_stages=3, input_size=4)


def test_vgg_discriminator_takes_the_spsr_releases_130_px_gradient_maps() -> None:
    # Padding 2 around M(.) makes 130 px maps of 128 px patches; five stride-2 convs floor them to 4x4 (65, 32, ...).
    model = VGGDiscriminator(num_features=4, input_size=130)
    assert model.classifier[0].in_features == 8 * 4 * 4 * 4  # widths 4..32, a 4x4 map
    assert model(torch.rand(2, 3, 130, 130)).shape == (2, 1)


def test_vgg_discriminator_channels_last_and_bf16_autocast_agree() -> None:
    model = VGGDiscriminator(**TINY_VGG).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        reference = model(x)
        torch.testing.assert_close(model(x.to(memory_format=torch.channels_last)), reference, atol=1e-5, rtol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    torch.testing.assert_close(low.float(), reference, atol=0.05 * reference.abs().max().item() + 0.02, rtol=0.05)


# ---- SRGAN's discriminator (Ledig et al. 2017, Fig. 4) -------------------------------------------------------


def test_srgan_critic_parameter_count_matches_the_layer_list() -> None:
    # Fig. 4 counted by hand: k3n64s1 (bias, no BN); then 3x3 convs n64 s2, n128 s1, n128 s2, n256 s1, n256 s2,
    # n512 s1, n512 s2, bias-free and each followed by BN (scale + shift per channel); Dense(1024), Dense(1).
    expected = 3 * 64 * 9 + 64
    layers = [(64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    expected += sum(cin * cout * 9 + 2 * cout for cin, cout in layers)
    expected += 512 * 6 * 6 * 1024 + 1024 + 1024 + 1  # a 96x96 patch reaches the head as 6x6x512
    assert expected == 23_563_649
    with torch.device("meta"):
        model = SRGANDiscriminator()
        assert sum(p.numel() for p in model.parameters()) == expected
        strides = [block.conv.stride[0] for block in model.features]
        assert strides == [1, 2, 1, 2, 1, 2, 1, 2]
        assert [block.conv.kernel_size for block in model.features] == [(3, 3)] * 8
        assert [isinstance(block.norm, nn.BatchNorm2d) for block in model.features] == [False] + [True] * 7
        assert model.classifier.hidden.in_features == 512 * 6 * 6


def test_srgan_critic_gives_one_logit_per_96px_patch_and_trains() -> None:
    torch.manual_seed(0)
    model = SRGANDiscriminator(num_features=8, hidden_features=16)  # Fig. 4's layout, narrow
    patches = torch.rand(3, 3, 96, 96)
    logits = model(patches)
    assert logits.shape == (3, 1)
    with torch.no_grad():  # raw Dense(1) output: the paper's sigmoid belongs to the loss
        torch.testing.assert_close(logits, model.classifier(model.features(patches).flatten(1)))
    # The loss of a logit-taking GAN criterion: BCE-with-logits pushes real up.
    loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
    assert_trains(model, loss)
    with pytest.raises(ConfigError, match=r"built for 96x96 inputs, got 128x128"):
        model(torch.rand(1, 3, 128, 128))
    with pytest.raises(ConfigError, match="multiple of"):
        SRGANDiscriminator(input_size=100)


def test_srgan_critic_channels_last_and_bf16_autocast_agree() -> None:
    model = SRGANDiscriminator(num_features=8, hidden_features=16, num_stages=2, input_size=16)
    check_all_outputs_channels_last_and_bf16(model, torch.rand(2, 3, 16, 16))


# ---- official checkpoints ----------------------------------------------------------------------------------


def _official_vgg(layout: str, *, in_channels: int, widths: list[int], final: int, hidden: int) -> dict:
    """A random state dict in an official layout, keys and shapes written out from that layout."""
    gen = torch.Generator().manual_seed(1)
    sd: dict[str, Tensor] = {}

    def rand(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen) * 0.2

    def bn(prefix: str, channels: int) -> None:
        sd[f"{prefix}.weight"] = 1 + rand(channels)
        sd[f"{prefix}.bias"] = rand(channels)
        sd[f"{prefix}.running_mean"] = rand(channels)
        sd[f"{prefix}.running_var"] = 0.5 + torch.rand(channels, generator=gen)
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(7)

    prev = in_channels
    for stage, width in enumerate(widths):
        for sub, (cin, kernel) in enumerate(((prev, 3), (width, 4))):
            index = 2 * stage + sub
            conv = f"features.{index}.0" if layout == "old" else f"conv{stage}_{sub}"
            sd[f"{conv}.weight"] = rand(width, cin, kernel, kernel)
            if layout == "old" or index == 0:
                sd[f"{conv}.bias"] = rand(width)
            if index > 0:
                bn(f"features.{index}.1" if layout == "old" else f"bn{stage}_{sub}", width)
        prev = width
    first_fc, second_fc = ("classifier.0", "classifier.2") if layout == "old" else ("linear1", "linear2")
    sd[f"{first_fc}.weight"] = rand(hidden, widths[-1] * final * final)
    sd[f"{first_fc}.bias"] = rand(hidden)
    sd[f"{second_fc}.weight"] = rand(1, hidden)
    sd[f"{second_fc}.bias"] = rand(1)
    return sd


def _official_vgg_forward(sd: dict, layout: str, num_stages: int, x: Tensor) -> Tensor:
    """The VGG-128 forward pass in eval mode, written against the official keys."""
    for stage in range(num_stages):
        for sub in range(2):
            index = 2 * stage + sub
            conv = f"features.{index}.0" if layout == "old" else f"conv{stage}_{sub}"
            x = F.conv2d(x, sd[f"{conv}.weight"], sd.get(f"{conv}.bias"), stride=1 + sub, padding=1)
            if index > 0:
                norm = f"features.{index}.1" if layout == "old" else f"bn{stage}_{sub}"
                x = F.batch_norm(
                    x,
                    sd[f"{norm}.running_mean"],
                    sd[f"{norm}.running_var"],
                    sd[f"{norm}.weight"],
                    sd[f"{norm}.bias"],
                    training=False,
                    eps=1e-5,
                )
            x = F.leaky_relu(x, 0.2)
    first_fc, second_fc = ("classifier.0", "classifier.2") if layout == "old" else ("linear1", "linear2")
    x = F.leaky_relu(F.linear(x.flatten(1), sd[f"{first_fc}.weight"], sd[f"{first_fc}.bias"]), 0.2)
    return F.linear(x, sd[f"{second_fc}.weight"], sd[f"{second_fc}.bias"])


@pytest.mark.parametrize("layout", ["old", "basicsr"])
def test_convert_official_vgg_discriminator(layout: str) -> None:
    widths, final = [8, 16, 32], 2  # a 16x16 input after three stride-2 stages
    official = _official_vgg(layout, in_channels=3, widths=widths, final=final, hidden=12)
    if layout == "old":
        official = {f"module.{key}": value for key, value in official.items()}  # saved from DataParallel
    assert is_official(official)
    kwargs, ours = convert_official(official)
    assert kwargs == {
        "in_channels": 3,
        "num_features": 8,
        "num_stages": 3,
        "input_size": 16,
        "hidden_features": 12,
        "conv_bias": layout == "old",
    }
    model = VGGDiscriminator(**kwargs)
    model.load_state_dict(ours, strict=True)
    x = torch.rand(2, 3, 16, 16)
    plain = {key.removeprefix("module."): value for key, value in official.items()}
    expected = _official_vgg_forward(plain, layout, 3, x)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), expected, atol=1e-5, rtol=1e-5)


def test_convert_official_rejects_other_layouts() -> None:
    ours = VGGDiscriminator(**TINY_VGG).state_dict()
    assert not is_official(ours)
    with pytest.raises(CheckpointError):
        convert_official(ours)
    odd = _official_vgg("old", in_channels=3, widths=[8, 16], final=4, hidden=12)
    odd["features.2.0.weight"] = torch.zeros(24, 8, 3, 3)  # not the doubling VGG progression
    with pytest.raises(CheckpointError, match="widths"):
        convert_official(odd)


@pytest.mark.parametrize("layout", ["old", "basicsr"])
def test_official_critic_converts_to_srtk_and_load_model_refuses_it(tmp_path: Path, layout: str) -> None:
    official = _official_vgg(layout, in_channels=3, widths=[8, 16, 32], final=2, hidden=12)
    torch.save({"params": official}, tmp_path / "critic.pth")  # BasicSR's wrapper
    card = convert_official_to_srtk(tmp_path / "critic.pth", tmp_path / "critic.safetensors")
    assert card.architecture == "vgg-128" and "VGG-128 discriminator" in card.source
    reloaded, reloaded_card = load_srtk_checkpoint(tmp_path / "critic.safetensors", build_model)
    assert reloaded_card == card
    in_memory = VGGDiscriminator(**convert_official(official)[0])
    in_memory.load_state_dict(convert_official(official)[1])
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out = reloaded.eval()(x)
        torch.testing.assert_close(out, in_memory.eval()(x), rtol=0, atol=0)
        torch.testing.assert_close(out, _official_vgg_forward(official, layout, 3, x), atol=1e-5, rtol=1e-5)
    for path in (tmp_path / "critic.pth", tmp_path / "critic.safetensors"):  # it scores images: no upscaler
        with pytest.raises(CheckpointError, match="vgg-128 is a discriminator, not an SR model"):
            load_model(path)


def test_old_checkpoints_without_bn_step_counts_convert() -> None:
    # PyTorch < 0.4.1 saved no num_batches_tracked: the converter starts them at 0, as a fresh BatchNorm.
    official = _official_vgg("old", in_channels=3, widths=[8, 16], final=4, hidden=12)
    official = {key: value for key, value in official.items() if not key.endswith("num_batches_tracked")}
    kwargs, ours = convert_official(official)
    VGGDiscriminator(**kwargs).load_state_dict(ours, strict=True)
    assert int(ours["features.1.norm.num_batches_tracked"]) == 0


def test_critic_key_mismatch_lists_the_keys_and_names_the_layout() -> None:
    official = _official_vgg("basicsr", in_channels=3, widths=[8, 16], final=4, hidden=12)
    official["extra.weight"] = torch.zeros(1)
    del official["bn1_1.running_var"]
    with pytest.raises(CheckpointError, match=r"BasicSR VGGStyleDiscriminator layout.*extra\.weight.*lacks"):
        convert_official(official)


# ---- U-Net discriminator (paper 002) -----------------------------------------------------------------------


def test_unet_discriminator_smoke() -> None:
    model = UNetDiscriminator(**TINY_UNET)
    out = model(torch.rand(2, 3, 16, 24))
    assert isinstance(out, UNetOutput)
    assert out.global_logit.shape == (2, 1)
    assert out.pixel_logits.shape == (2, 1, 16, 24)  # one decision per pixel
    # encoder blocks (16, 8x12), (32, 4x6), then decoder blocks back to (8, 16x24)
    assert [tuple(f.shape[1:]) for f in out.features] == [(16, 8, 12), (32, 4, 6), (16, 8, 12), (8, 16, 24)]
    loss = out.global_logit.mean() + out.pixel_logits.mean() + sum(f.mean() for f in out.features)
    assert_trains(model, loss)


def test_unet_discriminator_is_spectrally_normalised() -> None:
    model = UNetDiscriminator(**TINY_UNET)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 1 + 3 * 2 + 1 + 3 * 2 + 1  # stem, 2 down-, global head, 2 up-blocks, pixel head
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("original"):
                param.mul_(10.0)  # raw weights far from unit norm: only the normalisation brings them back
        for _ in range(60):  # in training mode every weight access runs one power iteration
            for layer in layers:
                layer.weight  # noqa: B018
    model.eval()
    for layer in layers:
        sigma = torch.linalg.matrix_norm(layer.weight.flatten(1), ord=2)
        torch.testing.assert_close(sigma, torch.tensor(1.0), atol=0.02, rtol=0)


def test_unet_discriminator_judges_each_image_on_its_own() -> None:
    # No batch statistics anywhere (spectral norm, no BN): CutMix consistency needs per-image decisions.
    model = UNetDiscriminator(**TINY_UNET).eval()
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        batch = model(x)
        alone = model(x[1:2])
    torch.testing.assert_close(batch.global_logit[1:2], alone.global_logit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.pixel_logits[1:2], alone.pixel_logits, atol=1e-5, rtol=1e-5)


def test_unet_discriminator_rejects_sizes_it_cannot_halve() -> None:
    with pytest.raises(ConfigError, match="divisible by 4"):
        UNetDiscriminator(**TINY_UNET)(torch.rand(1, 3, 18, 16))


def test_unet_discriminator_channels_last_and_bf16_autocast_agree() -> None:
    model = UNetDiscriminator(**TINY_UNET)
    check_all_outputs_channels_last_and_bf16(model, torch.rand(2, 3, 16, 16))
