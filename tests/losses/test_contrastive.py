"""PCL (paper 004): samples (eq. 5-6), the embedding's input transforms (Table IV), eq. 9 similarity, the
contrastive loss (eq. 8, 10), the contrastive discriminator loss (eq. 7) and PCLObjective (E_D, VGG, PCL-F)."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor

from srtk.config.train import ContrastiveConfig
from srtk.data.io import read_image
from srtk.data.resize import imresize
from srtk.errors import CheckpointError, ConfigError, SrtkError
from srtk.losses.contrastive import (
    PCLObjective,
    VGGEmbedding,
    contrastive_discriminator_loss,
    contrastive_loss,
    mean_cosine_similarity,
)
from srtk.losses.contrastive_samples import (
    ContrastiveSamples,
    SampleGenerator,
    filter_each_image,
    gaussian_blur,
    gaussian_kernel,
    gaussian_kernels,
    sharpen,
)
from srtk.models.checkpoint import ModelCard, save_model
from srtk.models.edsr import EDSR
from srtk.models.embedding import EmbeddingNetwork, FourierMap
from tests.conftest import shared_path
from tests.models.checks import check_all_outputs_channels_last_and_bf16

TINY_EMBEDDING = {"num_features": 4, "hidden_features": 8}
PATCH = 32  # HR patch: E_D's Haar input needs a multiple of 32 for 8 blocks


def tiny_cfg(**changes: object) -> ContrastiveConfig:
    return replace(ContrastiveConfig(embedding_options=TINY_EMBEDDING), **changes)


@pytest.fixture(autouse=True)
def empty_torch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may see (or fetch) real ImageNet weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))


def high_frequency_energy(img: Tensor) -> Tensor:
    """Per image: spectral power above half the Nyquist frequency on either axis (|f| > 1/4 cycle per pixel)."""
    power = torch.fft.fft2(img.double()).abs().square()  # (N, C, H, W)
    fy = torch.fft.fftfreq(img.shape[-2], dtype=torch.float64).abs()
    fx = torch.fft.fftfreq(img.shape[-1], dtype=torch.float64).abs()
    high = (fy[:, None] > 0.25) | (fx[None, :] > 0.25)
    return (power * high).sum(dim=(-3, -2, -1))


@pytest.fixture(scope="module")
def photos() -> Tensor:
    """Two 64x64 crops of Set14 photographs (fur and stripes: plenty of detail), (2, 3, 64, 64)."""
    folder = shared_path("datasets", "benchmark", "Set14")
    crops = [read_image(folder / name)[:, 100:164, 100:164] for name in ("baboon.png", "zebra.png")]
    return torch.stack(crops)


# ---- samples (eq. 5-6) -------------------------------------------------------------------------------------


def test_gaussian_kernel_is_the_closed_form_and_sums_to_one() -> None:
    kernel = gaussian_kernel(3, 1.0, dtype=torch.float64)
    total = 1 + 4 * math.exp(-0.5) + 4 * math.exp(-1.0)  # centre, 4 edge neighbours (d^2 = 1), 4 corners (d^2 = 2)
    expected = torch.tensor(
        [
            [math.exp(-1.0), math.exp(-0.5), math.exp(-1.0)],
            [math.exp(-0.5), 1.0, math.exp(-0.5)],
            [math.exp(-1.0), math.exp(-0.5), math.exp(-1.0)],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(kernel, expected / total, atol=1e-12, rtol=0)
    for size, sigma in ((5, 0.3), (11, 1.5), (7, 0.8)):
        wide = gaussian_kernel(size, sigma, dtype=torch.float64)
        assert wide.shape == (size, size)
        assert wide.sum().item() == pytest.approx(1.0, abs=1e-12)
        torch.testing.assert_close(wide, wide.T)  # isotropic
    # sigma = 0.3: the neighbours weigh exp(-1 / 0.18) = 0.0039 of the centre
    narrow = gaussian_kernel(3, 0.3, dtype=torch.float64)
    assert (narrow[1, 0] / narrow[1, 1]).item() == pytest.approx(math.exp(-1 / 0.18), rel=1e-9)
    with pytest.raises(ConfigError, match="odd"):
        gaussian_kernel(4, 1.0)


def test_gaussian_blur_keeps_constants_and_spreads_an_impulse_as_the_kernel() -> None:
    constant = torch.full((2, 3, 12, 12), 0.4)
    torch.testing.assert_close(gaussian_blur(constant, 5, 1.2), constant)  # reflect padding: no dark border
    impulse = torch.zeros(1, 3, 13, 13, dtype=torch.float64)
    impulse[0, 1, 6, 6] = 1.0
    blurred = gaussian_blur(impulse, 5, 0.9)
    assert blurred.shape == impulse.shape
    torch.testing.assert_close(blurred[0, 1, 4:9, 4:9], gaussian_kernel(5, 0.9, dtype=torch.float64))
    assert blurred[0, 0].abs().max().item() == 0.0  # channels never mix


def test_kernels_of_different_sizes_in_one_conv_match_separate_blurs() -> None:
    img = torch.rand(2, 3, 14, 14, dtype=torch.float64)
    kernels = gaussian_kernels(torch.tensor([3, 11]), torch.tensor([0.5, 1.5], dtype=torch.float64), 11)
    assert kernels.shape == (2, 11, 11) and kernels[0, :4].abs().max().item() == 0.0  # 3x3 inside an 11x11
    together = filter_each_image(img, kernels)
    torch.testing.assert_close(together[:1], gaussian_blur(img[:1], 3, 0.5), atol=1e-12, rtol=0)
    torch.testing.assert_close(together[1:], gaussian_blur(img[1:], 11, 1.5), atol=1e-12, rtol=0)


def test_sharpen_is_identity_plus_strength_times_high_pass() -> None:
    # 0.5 background with one 0.75 pixel: smooth (1 1 1 / 1 5 1 / 1 1 1) / 13 by hand at the centre and beside it
    img = torch.full((2, 1, 5, 5), 0.5, dtype=torch.float64)
    img[:, :, 2, 2] = 0.75
    out = sharpen(img, torch.tensor([1.0, 0.5]))  # one strength per image
    for n, amount in enumerate((1.0, 0.5)):
        centre_smooth = (5 * 0.75 + 8 * 0.5) / 13
        assert out[n, 0, 2, 2].item() == pytest.approx(0.75 + amount * (0.75 - centre_smooth), abs=1e-12)
        beside_smooth = (5 * 0.5 + 7 * 0.5 + 0.75) / 13
        assert out[n, 0, 2, 1].item() == pytest.approx(0.5 + amount * (0.5 - beside_smooth), abs=1e-12)
        assert out[n, 0, 0, 0].item() == pytest.approx(0.5, abs=1e-12)  # flat: nothing to sharpen
    torch.testing.assert_close(sharpen(img, 0.0), img)
    assert sharpen(torch.tensor([0.0, 1.0]).repeat(1, 1, 4, 2), 3.0).min().item() >= 0.0  # clamped to [0, 1]


def test_blurred_negatives_lose_and_sharpened_positives_gain_high_frequencies(photos: Tensor) -> None:
    lr = imresize(photos, 0.25)
    torch.manual_seed(4)
    samples = SampleGenerator(ContrastiveConfig())(photos, lr)
    hr_energy = high_frequency_energy(photos)
    for positive in samples.positives[1:]:
        ratio = high_frequency_energy(positive) / hr_energy
        assert (ratio > 1.0).all(), ratio
    for negative in samples.negatives[1:]:
        ratio = high_frequency_energy(negative) / hr_energy
        assert (ratio < 1.0).all(), ratio
    assert (high_frequency_energy(samples.negatives[0]) / hr_energy < 0.3).all()  # bicubic LR: the easy negative
    # The ends of the ranges act strongly on the power above f/4: sigma 1.5 removes over 3/4, strength 2 triples it.
    strong_blur = high_frequency_energy(gaussian_blur(photos, 11, 1.5)) / hr_energy
    strong_sharp = high_frequency_energy(sharpen(photos, 2.0)) / hr_energy
    assert (strong_blur < 0.25).all() and (strong_sharp > 3.0).all(), (strong_blur, strong_sharp)


def test_sample_generator_shapes_and_fixed_members() -> None:
    hr, lr = torch.rand(3, 3, 16, 16), torch.rand(3, 3, 4, 4)
    samples = SampleGenerator(ContrastiveConfig(num_positives=2, num_negatives=3))(hr, lr)
    assert isinstance(samples, ContrastiveSamples)
    assert samples.positives.shape == (3, 3, 3, 16, 16)  # HR + K_P = 2
    assert samples.negatives.shape == (4, 3, 3, 16, 16)  # LR up + K_N = 3
    torch.testing.assert_close(samples.positives[0], hr, rtol=0, atol=0)
    torch.testing.assert_close(samples.negatives[0], imresize(lr, size=(16, 16)).clamp(0, 1))
    assert samples.positives.min() >= 0 and samples.positives.max() <= 1


def test_sample_generator_with_fixed_draws_matches_the_operators() -> None:
    cfg = ContrastiveConfig(num_positives=1, num_negatives=1, blur_kernel_sizes=(5,), blur_sigma=(0.7, 0.7))
    cfg = replace(cfg, sharpen_amount=(1.5, 1.5))
    hr = torch.rand(2, 3, 16, 16)
    samples = SampleGenerator(cfg)(hr, hr)  # an LR at HR size is taken as it is
    torch.testing.assert_close(samples.positives[1], sharpen(hr, 1.5))
    torch.testing.assert_close(samples.negatives[1], gaussian_blur(hr, 5, 0.7))
    torch.testing.assert_close(samples.negatives[0], hr, rtol=0, atol=0)


def test_sample_generator_draws_per_image_from_the_global_rng() -> None:
    image = torch.rand(1, 3, 16, 16)
    hr, lr = image.repeat(2, 1, 1, 1), torch.rand(2, 3, 4, 4)  # two copies of one image
    generator = SampleGenerator(ContrastiveConfig())
    torch.manual_seed(7)
    first = generator(hr, lr)
    torch.manual_seed(7)
    again = generator(hr, lr)
    torch.testing.assert_close(first.positives, again.positives, rtol=0, atol=0)
    torch.testing.assert_close(first.negatives, again.negatives, rtol=0, atol=0)
    torch.manual_seed(8)
    other = generator(hr, lr)
    assert not torch.equal(other.negatives[1:], first.negatives[1:])
    # per image: the two copies get their own strengths, sizes and widths
    for k in range(1, 5):
        assert not torch.equal(first.positives[k, 0], first.positives[k, 1])
        assert not torch.equal(first.negatives[k, 0], first.negatives[k, 1])


@pytest.mark.parametrize(
    ("changes", "num_positives", "num_negatives"),
    [
        ({}, 5, 5),
        ({"generate_samples": False}, 1, 1),  # Table IV config 4 = Table VI first row: HR vs LR up only
        ({"use_positives": False}, 1, 5),  # Table VI: negatives only
        ({"use_negatives": False}, 5, 1),  # Table VI: positives only
        ({"num_positives": 0, "num_negatives": 2}, 1, 3),
    ],
)
def test_sample_switches(changes: dict, num_positives: int, num_negatives: int) -> None:
    hr, lr = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 4, 4)
    torch.manual_seed(1)
    full = SampleGenerator(ContrastiveConfig())(hr, lr)
    torch.manual_seed(1)
    samples = SampleGenerator(replace(ContrastiveConfig(), **changes))(hr, lr)
    assert samples.positives.shape[0] == num_positives and samples.negatives.shape[0] == num_negatives
    torch.testing.assert_close(samples.positives[0], hr, rtol=0, atol=0)
    torch.testing.assert_close(samples.negatives[0], full.negatives[0], rtol=0, atol=0)
    if changes.get("use_positives") is False:  # nothing drawn for positives: the negatives draw first
        assert not torch.equal(samples.negatives[1:], full.negatives[1:])
    if changes.get("use_negatives") is False:  # positives are drawn first: unchanged
        torch.testing.assert_close(samples.positives, full.positives, rtol=0, atol=0)


def test_sample_generator_rejects_bad_ranges() -> None:
    with pytest.raises(ConfigError, match="odd"):
        SampleGenerator(ContrastiveConfig(blur_kernel_sizes=(3, 4)))
    with pytest.raises(ConfigError, match="blur_sigma"):
        SampleGenerator(ContrastiveConfig(blur_sigma=(0.0, 1.0)))
    with pytest.raises(ConfigError, match="sharpen_amount"):
        SampleGenerator(ContrastiveConfig(sharpen_amount=(-0.5, 1.0)))


# ---- E_D's input transforms (Table IV) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transform", "first_channels", "shapes"),
    [
        ("haar", 9, [(4, 16, 16), (4, 8, 8), (8, 8, 8), (8, 4, 4)]),  # sub-bands at half size
        ("rgb", 3, [(4, 32, 32), (4, 16, 16), (8, 16, 16), (8, 8, 8)]),  # the image itself, full size
        ("fft", 6, [(4, 32, 32), (4, 16, 16), (8, 16, 16), (8, 8, 8)]),  # Re and Im per colour, full size
    ],
)
def test_embedding_input_transforms_build_and_run(transform: str, first_channels: int, shapes: list) -> None:
    model = EmbeddingNetwork(input_transform=transform, input_size=PATCH, **TINY_EMBEDDING)
    assert model.blocks[0].conv.weight.shape[1] == first_channels
    img = torch.rand(2, 3, PATCH, PATCH)
    out = model(img)
    assert out.score.shape == (2, 1)
    assert [tuple(f.shape[1:]) for f in out.features] == shapes
    assert [tuple(f.shape[1:]) for f in model.features(img, 2)] == shapes[:2]
    # the dense head: the last block's 4 * 2^3 = 32 channels on (PATCH / downsampling)^2 positions, where the
    # downsampling is 2 (Haar) x 2^4 (four stride-2 blocks) = 32, or 16 without the Haar halving
    final = 1 if transform == "haar" else 2
    assert model.classifier.hidden.weight.shape == (8, 32 * final * final)
    (out.score.sum() + sum(f.mean() for f in out.features)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.card_config()["input_transform"] == transform
    rebuilt = EmbeddingNetwork(**model.card_config())
    rebuilt.load_state_dict(model.state_dict())


@pytest.mark.parametrize("transform", ["rgb", "fft"])
def test_embedding_input_transforms_channels_last_and_bf16_autocast_agree(transform: str) -> None:
    model = EmbeddingNetwork(input_transform=transform, input_size=16, **TINY_EMBEDDING)
    check_all_outputs_channels_last_and_bf16(model, torch.rand(2, 3, 16, 16))


def test_rgb_and_fft_embeddings_take_half_the_haar_patch_multiple() -> None:
    EmbeddingNetwork(input_transform="rgb", input_size=16, **TINY_EMBEDDING)  # 4 stride-2 blocks: 16
    EmbeddingNetwork(input_transform="fft", input_size=48, **TINY_EMBEDDING)
    with pytest.raises(ConfigError, match="multiple of 32"):
        EmbeddingNetwork(input_transform="haar", input_size=16, **TINY_EMBEDDING)
    with pytest.raises(ConfigError, match="unknown input_transform 'dct'"):
        EmbeddingNetwork(input_transform="dct")


def test_fourier_map_of_a_constant_and_parseval() -> None:
    img = torch.full((1, 3, 4, 6), 0.5, dtype=torch.float64)
    spectrum = FourierMap()(img)
    assert spectrum.shape == (1, 6, 4, 6)
    expected = torch.zeros_like(spectrum)
    expected[0, :3, 2, 3] = 0.5 * math.sqrt(24)  # ortho DC = sum / sqrt(HW), centred by fftshift at (H/2, W/2)
    torch.testing.assert_close(spectrum, expected, atol=1e-12, rtol=0)
    noise = torch.rand(2, 3, 6, 8, dtype=torch.float64, requires_grad=True)
    mapped = FourierMap()(noise)
    torch.testing.assert_close(mapped.square().sum(), noise.square().sum())  # orthonormal: the image's energy
    mapped.square().sum().backward()
    torch.testing.assert_close(noise.grad, 2 * noise.detach())  # differentiable, and exactly Parseval's gradient


# ---- eq. 9, eq. 8 + 10, eq. 7 -------------------------------------------------------------------------------


def test_mean_cosine_similarity_known_answers() -> None:
    # (C=2, H=1, W=3): per pixel cos = 0 (orthogonal), 1 (parallel, other length), -1 (opposite)
    a = torch.tensor([[[1.0, 1.0, 3.0]], [[0.0, 1.0, 4.0]]])
    b = torch.tensor([[[0.0, 2.0, -3.0]], [[1.0, 2.0, -4.0]]])
    assert mean_cosine_similarity(a, b).item() == pytest.approx((0 + 1 - 1) / 3, abs=1e-7)
    c = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
    d = torch.tensor([[[1.0, 5.0]], [[0.0, 0.0]]])  # cos 1/sqrt2; a zero vector counts as cos 0
    assert mean_cosine_similarity(c, d).item() == pytest.approx(0.5 / math.sqrt(2), abs=1e-7)
    batched = mean_cosine_similarity(a[None, None], torch.stack([a, b, -a])[:, None])  # (1,1,..) x (3,1,..)
    assert batched.shape == (3, 1)
    torch.testing.assert_close(batched[:, 0], torch.tensor([1.0, 0.0, -1.0]))


def _vectors(*rows: tuple[float, float]) -> Tensor:
    """1x1 feature maps with C = 2: (len(rows), 2, 1, 1)."""
    return torch.tensor(rows).view(len(rows), 2, 1, 1)


def test_contrastive_loss_equals_the_hand_computed_log_softmax() -> None:
    # Layer 1, two images. Image 1: f = (1, 0); positives (1, 0), (0, 1) -> cos 1, 0; negatives (-1, 0), (0, 2)
    # -> cos -1, 0. Image 2: f = (0, 1) with the same samples -> positives 0, 1; negatives 0, 1.
    sr1 = _vectors((1.0, 0.0), (0.0, 1.0))
    pos1 = torch.stack([_vectors((1.0, 0.0), (1.0, 0.0)), _vectors((0.0, 1.0), (0.0, 1.0))])  # (K_P=2, N=2, 2, 1, 1)
    neg1 = torch.stack([_vectors((-1.0, 0.0), (-1.0, 0.0)), _vectors((0.0, 2.0), (0.0, 2.0))])
    # Layer 2: both images f = (1, 0), one positive (3, 0) -> cos 1, one negative (0, 1) -> cos 0.
    sr2 = _vectors((1.0, 0.0), (1.0, 0.0))
    pos2, neg2 = _vectors((3.0, 0.0), (3.0, 0.0))[None], _vectors((0.0, 1.0), (0.0, 1.0))[None]
    tau = 0.5  # logits are cos / tau = 2 cos
    e = math.exp
    image1_layer1 = 0.5 * (-math.log(e(2) / (e(2) + e(-2) + e(0))) - math.log(e(0) / (e(0) + e(-2) + e(0))))
    image2_layer1 = 0.5 * (-math.log(e(0) / (e(0) + e(0) + e(2))) - math.log(e(2) / (e(2) + e(0) + e(2))))
    layer2 = -math.log(e(2) / (e(2) + e(0)))  # the same for both images
    expected = (image1_layer1 + image2_layer1 + 2 * layer2) / 4  # eq. 10: 1 / (N L), N = L = 2
    loss = contrastive_loss([sr1, sr2], [pos1, pos2], [neg1, neg2], temperature=tau)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.5509, abs=1e-4)  # the number itself, for the record
    # tau = 1: the cosines are the logits
    layer2_tau1 = contrastive_loss([sr2], [pos2], [neg2], temperature=1.0)
    assert layer2_tau1.item() == pytest.approx(math.log(1 + e(-1)), rel=1e-6)
    with pytest.raises(ValueError, match="at least one positive"):
        contrastive_loss([sr2], [pos2[:0]], [neg2], temperature=1.0)


def test_contrastive_loss_averages_cosines_over_pixels() -> None:
    # one 1x2 map: pixel cosines with the positive 1 and -1 -> s = 0; the negative is parallel -> s = 1
    sr = torch.tensor([[[[1.0, 1.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    positive = torch.tensor([[[[2.0, -1.0]], [[0.0, 0.0]]]])[None]
    negative = torch.tensor([[[[5.0, 5.0]], [[0.0, 0.0]]]])[None]
    loss = contrastive_loss([sr], [positive], [negative], temperature=1.0)
    assert loss.item() == pytest.approx(math.log(1 + math.e), rel=1e-6)  # -log(e^0 / (e^0 + e^1))


def test_contrastive_discriminator_loss_hand_computed() -> None:
    zeros = torch.zeros(3, 1)
    assert contrastive_discriminator_loss(zeros, zeros).item() == pytest.approx(2 * math.log(4), rel=1e-6)
    # real (1, 0), fake (0): HR half: -log(e/(e+1)), -log(1/(1+1)); SR half: -log(1/(1 + e^-1 + 1))
    real, fake = torch.tensor([[1.0], [0.0]]), torch.tensor([[0.0]])
    expected = 0.5 * (math.log(1 + math.exp(-1)) + math.log(2)) + math.log(2 + math.exp(-1))
    assert contrastive_discriminator_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    confident = contrastive_discriminator_loss(torch.full((4,), 20.0), torch.full((4,), -20.0))
    assert confident.item() < 1e-15 * 1e3  # a perfect critic costs nothing
    fooled = contrastive_discriminator_loss(torch.full((4,), -5.0), torch.full((4,), 5.0))
    assert fooled.item() == pytest.approx(2 * (10 + math.log(4)), rel=1e-3)


# ---- PCLObjective ------------------------------------------------------------------------------------------


def _batch() -> tuple[Tensor, Tensor, Tensor]:
    hr = torch.rand(2, 3, PATCH, PATCH)
    lr = imresize(hr, 0.25).clamp(0, 1)
    sr = (hr + 0.1 * torch.randn_like(hr)).clamp(0, 1).requires_grad_(True)
    return sr, hr, lr


@pytest.mark.parametrize("embedding", ["haar", "rgb", "fft"])
def test_generator_loss_reaches_sr_only_and_equals_eq_10_on_the_samples(embedding: str) -> None:
    objective = PCLObjective(tiny_cfg(embedding=embedding), hr_patch_size=PATCH)
    assert objective.trains_embedding and isinstance(objective.embedding, EmbeddingNetwork)
    assert objective.embedding.input_transform == embedding
    objective.embedding.requires_grad_(False)  # what the trainer does for the generator step
    objective.embedding.train()
    running_mean = objective.embedding.blocks[0].norm.running_mean.clone()
    sr, hr, lr = _batch()
    torch.manual_seed(5)
    loss = objective.generator_loss(sr, hr, lr)
    loss.backward()
    assert sr.grad is not None and torch.isfinite(sr.grad).all() and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in objective.embedding.parameters())
    # frozen means frozen: eval-mode batch norm (no statistics update), and the caller's mode comes back
    torch.testing.assert_close(objective.embedding.blocks[0].norm.running_mean, running_mean, rtol=0, atol=0)
    assert objective.embedding.training and objective.embedding.blocks[0].norm.training
    # the same number from the parts: the same draws, E_D's features in eval mode, eq. 8 + 10
    torch.manual_seed(5)
    samples = SampleGenerator(tiny_cfg())(hr, lr)
    network = objective.embedding.eval()
    with torch.no_grad():
        feats = [network.features(img) for img in (*samples.positives, *samples.negatives)]
        sr_feats = network.features(sr)
    num_pos = samples.positives.shape[0]
    positives = [torch.stack([f[layer] for f in feats[:num_pos]]) for layer in range(4)]
    negatives = [torch.stack([f[layer] for f in feats[num_pos:]]) for layer in range(4)]
    expected = contrastive_loss(sr_feats, positives, negatives, temperature=1.0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_embedding_loss_trains_every_parameter_of_e_d() -> None:
    objective = PCLObjective(tiny_cfg(), hr_patch_size=PATCH)
    sr, hr, _ = _batch()
    network = objective.embedding  # a critic: in train mode, as the trainer runs it
    loss = objective.embedding_loss(sr.detach(), hr)
    loss.backward()
    for name, param in network.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        if name == "classifier.logit.bias":  # eq. 7 compares scores only: a shift of all of them changes nothing
            assert param.grad.abs().max().item() < 1e-6
        else:
            assert param.grad.abs().sum() > 0, name
    assert sr.grad is None
    # the value is eq. 7 on E_D's scores (train-mode batch norm, HR and SR batches apart)
    with torch.no_grad():
        expected = contrastive_discriminator_loss(network(hr).score, network(sr.detach()).score)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_vgg_embedding_is_fixed_and_taps_the_first_relus() -> None:
    objective = PCLObjective(
        tiny_cfg(embedding="vgg", embedding_options={}), hr_patch_size=PATCH, allow_random_vgg=True
    )
    assert not objective.trains_embedding and isinstance(objective.embedding, VGGEmbedding)
    assert objective.embedding.layer_names == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    assert objective.embedding.layer_indices == (1, 6, 11, 20)  # torchvision VGG19 `features`
    assert not any(p.requires_grad for p in objective.embedding.parameters())
    feats = objective.embedding.features(torch.rand(1, 3, PATCH, PATCH))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert all(f.min() >= 0 for f in feats)  # after the ReLU
    sr, hr, lr = _batch()
    objective.generator_loss(sr, hr, lr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="fixed"):
        objective.embedding_loss(sr.detach(), hr)


def test_vgg_embedding_needs_imagenet_weights_offline() -> None:
    with pytest.raises(SrtkError, match="VGG19 weights not found"):
        PCLObjective(tiny_cfg(embedding="vgg", embedding_options={}), hr_patch_size=PATCH)


def test_pcl_f_loads_a_saved_embedding_and_refuses_other_checkpoints(tmp_path: Path) -> None:
    trained = EmbeddingNetwork(input_transform="rgb", input_size=64, **TINY_EMBEDDING)
    with torch.no_grad():
        trained.blocks[0].norm.running_mean.uniform_(-0.2, 0.2)  # not the initial state
    card = ModelCard(architecture="pcl-embedding", config=trained.card_config(), scale=1, method="pcl")
    path = save_model(tmp_path / "ed.safetensors", trained, card)
    cfg = ContrastiveConfig(embedding="rgb", embedding_checkpoint=path)
    objective = PCLObjective(cfg, hr_patch_size=PATCH)  # features only: any patch size
    assert not objective.trains_embedding and not objective.embedding.training
    assert not any(p.requires_grad for p in objective.embedding.parameters())
    img = torch.rand(2, 3, PATCH, PATCH)
    with torch.no_grad():
        for got, want in zip(objective.embedding.features(img), trained.eval().features(img), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
    sr, hr, lr = _batch()
    assert torch.isfinite(objective.generator_loss(sr, hr, lr))
    with pytest.raises(ConfigError, match="takes rgb input"):
        PCLObjective(replace(cfg, embedding="haar"), hr_patch_size=PATCH)
    with pytest.raises(ConfigError, match="no embedding=vgg or embedding_options"):
        PCLObjective(replace(cfg, embedding_options=TINY_EMBEDDING), hr_patch_size=PATCH)
    edsr = EDSR(num_blocks=1, num_features=8, scale=2)
    other = save_model(
        tmp_path / "edsr.safetensors", edsr, ModelCard("edsr", {"num_blocks": 1, "num_features": 8, "scale": 2}, 2)
    )
    with pytest.raises(CheckpointError, match="holds 'edsr', not a PCL embedding network"):
        PCLObjective(replace(cfg, embedding_checkpoint=other), hr_patch_size=PATCH)


def test_objective_rejects_options_the_config_owns() -> None:
    with pytest.raises(ConfigError, match="may not set input_size"):
        PCLObjective(tiny_cfg(embedding_options={**TINY_EMBEDDING, "input_size": 64}), hr_patch_size=PATCH)
    with pytest.raises(ConfigError, match="temperature"):
        PCLObjective(tiny_cfg(temperature=0.0), hr_patch_size=PATCH)
    with pytest.raises(SrtkError, match="pcl-embedding"):  # a typo in the options names the network
        PCLObjective(tiny_cfg(embedding_options={"num_feature": 4}), hr_patch_size=PATCH)
