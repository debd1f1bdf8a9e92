"""The Haar transform and the PCL embedding network E_D (paper 004 sec. III-C, III-D)."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from srtk.errors import CheckpointError, ConfigError
from srtk.models.checkpoint import load_srtk_checkpoint
from srtk.models.embedding import (
    EmbeddingNetwork,
    EmbeddingOutput,
    HaarBands,
    HaarWavelet,
    convert_official,
    is_official,
)
from srtk.models.registry import build_model, convert_official_to_srtk, load_model
from tests.models.checks import assert_trains, check_all_outputs_channels_last_and_bf16

TINY = {"num_features": 8, "hidden_features": 16, "input_size": 32}


def test_haar_of_one_block_is_the_known_answer() -> None:
    a, b, c, d = 1.0, 2.0, 4.0, 8.0
    bands = HaarWavelet()(torch.tensor([[a, b], [c, d]]).view(1, 1, 2, 2))
    assert bands.ll.item() == pytest.approx((a + b + c + d) / 2)
    assert bands.lh.item() == pytest.approx((a + b - c - d) / 2)  # horizontal edge: top minus bottom
    assert bands.hl.item() == pytest.approx((a - b + c - d) / 2)  # vertical edge: left minus right
    assert bands.hh.item() == pytest.approx((a - b - c + d) / 2)


def test_haar_is_orthonormal_and_exactly_invertible() -> None:
    haar = HaarWavelet()
    img = torch.rand(2, 3, 8, 10, dtype=torch.float64)
    bands = haar(img)
    assert isinstance(bands, HaarBands)
    assert all(band.shape == (2, 3, 4, 5) for band in bands)
    torch.testing.assert_close(haar.inverse(bands), img, atol=1e-12, rtol=0)
    energy = sum(band.square().sum() for band in bands)
    torch.testing.assert_close(energy, img.square().sum(), atol=1e-10, rtol=0)  # Parseval: orthonormal


def test_haar_channels_do_not_mix() -> None:
    img = torch.rand(1, 3, 6, 6)
    bands = HaarWavelet()(img)
    alone = HaarWavelet()(img[:, 1:2])
    for both, single in zip(bands, alone, strict=True):
        torch.testing.assert_close(both[:, 1:2], single)


def test_constant_image_has_no_high_frequencies() -> None:
    haar = HaarWavelet()
    img = torch.full((2, 3, 8, 8), 0.3)
    bands = haar(img)
    for band in (bands.lh, bands.hl, bands.hh):
        assert band.abs().max().item() < 1e-7
    torch.testing.assert_close(bands.ll, torch.full_like(bands.ll, 0.6))  # 4 pixels / 2
    assert haar.high_frequency(img).shape == (2, 9, 4, 4)
    assert haar.high_frequency(img).abs().max().item() < 1e-7


def test_high_frequency_stacks_bands_band_major() -> None:
    haar = HaarWavelet()
    img = torch.rand(1, 3, 4, 4)
    bands = haar(img)
    stacked = haar.high_frequency(img)
    torch.testing.assert_close(stacked, torch.cat([bands.lh, bands.hl, bands.hh], dim=1))


def test_haar_rejects_odd_sizes() -> None:
    with pytest.raises(ConfigError, match="even"):
        HaarWavelet()(torch.rand(1, 3, 7, 8))


def test_embedding_network_parameter_count() -> None:
    # Hand count: eight bias-free 3x3 convs (9 -> 64, 64, 128, 128, 256, 256, 512, 512) each with BN, then
    # FC 512 * 6 * 6 -> 1024 -> 1 for 192x192 HR patches (96x96 sub-bands, four stride-2 blocks).
    widths = [64, 64, 128, 128, 256, 256, 512, 512]
    expected = sum(cin * cout * 9 + 2 * cout for cin, cout in zip([9, *widths], widths, strict=False))
    expected += 512 * 6 * 6 * 1024 + 1024 + 1024 + 1
    assert sum(p.numel() for p in EmbeddingNetwork().parameters()) == expected == 23_567_169


def test_embedding_network_smoke() -> None:
    model = EmbeddingNetwork(**TINY)
    out = model(torch.rand(2, 3, 32, 32))
    assert isinstance(out, EmbeddingOutput)
    assert out.score.shape == (2, 1)
    # the first four blocks on the 16x16 sub-bands: widths 8, 8, 16, 16 and strides 1, 2, 1, 2
    assert [tuple(f.shape[1:]) for f in out.features] == [(8, 16, 16), (8, 8, 8), (16, 8, 8), (16, 4, 4)]
    assert_trains(model, out.score.mean() + sum(f.mean() for f in out.features))


def test_features_alone_match_the_forward_features_at_any_even_size() -> None:
    model = EmbeddingNetwork(**TINY).eval()
    img = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = model(img)
        alone = model.features(img)
        assert len(model.features(torch.rand(1, 3, 24, 40))) == 4  # no classifier, so no fixed size
    for a, b in zip(out.features, alone, strict=True):
        torch.testing.assert_close(a, b)


def test_embedding_network_rejects_wrong_sizes_clearly() -> None:
    with pytest.raises(ConfigError, match="built for 32x32 inputs, got 64x64"):
        EmbeddingNetwork(**TINY)(torch.rand(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="multiple of 32"):
        EmbeddingNetwork(input_size=48)
    with pytest.raises(ConfigError, match="num_feature_layers"):
        EmbeddingNetwork(num_feature_layers=9)


def test_embedding_network_channels_last_and_bf16_autocast_agree() -> None:
    check_all_outputs_channels_last_and_bf16(EmbeddingNetwork(**TINY), torch.rand(2, 3, 32, 32))


# ---- the PCL authors' checkpoints --------------------------------------------------------------------------


def _official_embedding(widths: list[int], final: int, hidden: int) -> dict[str, Tensor]:
    """A random E_D state dict in the authors' layout, wrapped in their loss module, with the DWT buffers."""
    gen = torch.Generator().manual_seed(2)
    sd: dict[str, Tensor] = {}
    prev = 9
    for block, width in enumerate(widths):
        sd[f"features.{2 * block}.0.weight"] = torch.randn(width, prev, 3, 3, generator=gen) * 0.2
        sd[f"features.{2 * block}.1.weight"] = 1 + 0.1 * torch.randn(width, generator=gen)
        sd[f"features.{2 * block}.1.bias"] = 0.1 * torch.randn(width, generator=gen)
        sd[f"features.{2 * block}.1.running_mean"] = 0.1 * torch.randn(width, generator=gen)
        sd[f"features.{2 * block}.1.running_var"] = 0.5 + torch.rand(width, generator=gen)
        sd[f"features.{2 * block}.1.num_batches_tracked"] = torch.tensor(3)
        prev = width
    sd["classifier.1.weight"] = 0.2 * torch.randn(hidden, prev * final * final, generator=gen)
    sd["classifier.1.bias"] = 0.1 * torch.randn(hidden, generator=gen)
    sd["classifier.3.weight"] = 0.2 * torch.randn(1, hidden, generator=gen)
    sd["classifier.3.bias"] = 0.1 * torch.randn(1, generator=gen)
    sd["DWT2.h0_col"] = torch.full((1, 1, 2, 1), 2**-0.5)  # pytorch_wavelets filter buffers: dropped
    return sd


def _official_forward(sd: dict[str, Tensor], num_blocks: int, img: Tensor) -> Tensor:
    """E_D written against the authors' keys; Haar bands from pixel slices, independent of HaarWavelet."""
    a, b = img[..., 0::2, 0::2], img[..., 0::2, 1::2]
    c, d = img[..., 1::2, 0::2], img[..., 1::2, 1::2]
    x = torch.cat([(a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2], dim=1)  # LH, HL, HH
    for block in range(num_blocks):
        conv, norm = f"features.{2 * block}.0", f"features.{2 * block}.1"
        x = F.conv2d(x, sd[f"{conv}.weight"], stride=2 if block % 2 else 1, padding=1)
        x = F.batch_norm(
            x,
            sd[f"{norm}.running_mean"],
            sd[f"{norm}.running_var"],
            sd[f"{norm}.weight"],
            sd[f"{norm}.bias"],
            training=False,
        )
        x = F.leaky_relu(x, 0.2)
    x = F.leaky_relu(F.linear(x.flatten(1), sd["classifier.1.weight"], sd["classifier.1.bias"]), 0.2)
    return F.linear(x, sd["classifier.3.weight"], sd["classifier.3.bias"])


def test_convert_official_embedding_network() -> None:
    widths = [8, 8, 16, 16]  # four blocks: two stride-2, so a 16x16 image -> 8x8 bands -> 2x2 map
    plain = _official_embedding(widths, final=2, hidden=12)
    official = {f"loss_module.1.{key}": value for key, value in plain.items()}
    official["loss_module.0.weight"] = torch.zeros(1)  # another loss term saved beside E_D
    assert is_official(official)
    kwargs, ours = convert_official(official)
    assert kwargs == {
        "in_channels": 3,
        "num_features": 8,
        "num_blocks": 4,
        "hidden_features": 12,
        "input_size": 16,
    }
    model = EmbeddingNetwork(**kwargs)
    model.load_state_dict(ours, strict=True)
    img = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(img).score, _official_forward(plain, 4, img), atol=1e-5, rtol=1e-5)


def test_convert_official_rejects_other_layouts() -> None:
    ours = EmbeddingNetwork(**TINY).state_dict()
    assert not is_official(ours)
    with pytest.raises(CheckpointError):
        convert_official(ours)


def test_official_embedding_converts_to_srtk_and_load_model_refuses_it(tmp_path: Path) -> None:
    plain = _official_embedding([8, 8, 16, 16], final=2, hidden=12)
    official = {f"loss_module.1.{key}": value for key, value in plain.items()}
    official["loss_module.0.weight"] = torch.zeros(1)
    torch.save(official, tmp_path / "pcl.pth")
    card = convert_official_to_srtk(tmp_path / "pcl.pth", tmp_path / "pcl.safetensors")
    assert card.architecture == "pcl-embedding" and card.config["num_blocks"] == 4
    reloaded, reloaded_card = load_srtk_checkpoint(tmp_path / "pcl.safetensors", build_model)
    assert reloaded_card == card
    kwargs, ours = convert_official(official)
    in_memory = EmbeddingNetwork(**kwargs)
    in_memory.load_state_dict(ours)
    img = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out, expected = reloaded.eval()(img), in_memory.eval()(img)
        torch.testing.assert_close(out.score, _official_forward(plain, 4, img), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.score, expected.score, rtol=0, atol=0)
    for got, want in zip(out.features, expected.features, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match="pcl-embedding is a discriminator, not an SR model"):
        load_model(tmp_path / "pcl.pth")


def test_embedding_key_mismatch_lists_the_keys_and_names_the_layout() -> None:
    official = _official_embedding([8, 8, 16, 16], final=2, hidden=12)
    official["features.1.0.weight"] = torch.zeros(1)  # odd indices are activations: no weights there
    with pytest.raises(CheckpointError, match=r"PCL embedding network E_D layout.*features\.1\.0\.weight"):
        convert_official(official)
