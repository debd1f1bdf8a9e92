"""The PCL embedding network E_D: a discriminator on Haar high-frequency sub-bands whose intermediate features
embed SR, positive and negative images for the contrastive loss (paper 004 sec. III-C, III-D).

"We use Haar wavelet transform to extract the informative high-frequency components. The four
sub-bands ... LL, LH, HL, and HH. Then we stack the three high-frequency-related components (LH, HL, and HH)
as the input and feed them to discriminator network E_D" (sec. III-C); "We take the first 4 intermediate
layers to calculate our contrastive loss" (sec. III-D).

The paper gives no layer list for E_D. It is the discriminator of the EDSR code base that PCL extends (its
released code): eight 3x3 conv-BN-LeakyReLU blocks of widths 64, 64, 128, 128, 256, 256, 512, 512, stride 2
in every second block, then FC 1024 -> 1. The "intermediate layers" are the first blocks' outputs after
their activation (the authors' code stores each block output, then runs an in-place LeakyReLU on it, so the
features it compares are the activated ones).
Convention: images RGB, NCHW, float in [0, 1], even height and width.
"""

import re
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import CheckpointError, ConfigError
from srtk.models.discriminators import DOWNSAMPLE_STRIDE, NEGATIVE_SLOPE, ConvNormAct, logit_head, require_input_size

HAAR_SIZE = 2  # the Haar filters are 2x2, applied with stride 2
NUM_BANDS = 4  # LL, LH, HL, HH
NUM_HIGH_BANDS = 3  # LH, HL, HH feed E_D
KERNEL_SIZE = 3  # every E_D conv


class HaarBands(NamedTuple):
    """One level of the orthonormal 2-D Haar transform, each (N, C, H/2, W/2)."""

    ll: Tensor  # low-pass along both axes: the half-size image (scaled by 2)
    lh: Tensor  # high-pass along height, low-pass along width: horizontal edges (pywt's cH)
    hl: Tensor  # low-pass along height, high-pass along width: vertical edges (pywt's cV)
    hh: Tensor  # high-pass along both: diagonal detail (pywt's cD)


class HaarWavelet(nn.Module):
    """Orthonormal single-level 2-D Haar transform as one grouped stride-2 conv, and its exact inverse.

    Filters follow PyWavelets / pytorch_wavelets ("haar"): low = (a + b)/sqrt2, high = (a - b)/sqrt2 on each
    pair (first, second) of pixels, so a 2x2 block [[a, b], [c, d]] gives LL = (a+b+c+d)/2, LH = (a+b-c-d)/2,
    HL = (a-b+c-d)/2, HH = (a-b-c+d)/2. Orthonormal: the inverse is the transposed conv.
    """

    def __init__(self) -> None:
        super().__init__()
        low, high = torch.tensor([1.0, 1.0]), torch.tensor([1.0, -1.0])
        # (4, 1, 2, 2): outer products (height filter x width filter) in the order LL, LH, HL, HH. The two
        # 1/sqrt2 factors multiply to exactly 1/2, which every dtype holds exactly: the inverse is exact too.
        kernels = 0.5 * torch.stack(
            [torch.outer(low, low), torch.outer(high, low), torch.outer(low, high), torch.outer(high, high)]
        )
        self.register_buffer("kernels", kernels[:, None], persistent=False)

    def _grouped_kernels(self, channels: int, dtype: torch.dtype) -> Tensor:
        return self.kernels.to(dtype).repeat(channels, 1, 1, 1)  # (4C, 1, 2, 2): the 4 filters per channel

    def forward(self, img: Tensor) -> HaarBands:
        channels, height, width = img.shape[-3:]
        if height % HAAR_SIZE or width % HAAR_SIZE:
            raise ConfigError(f"the Haar transform needs even height and width, got {height}x{width}")
        # Channels become conv groups: one call gives the 4 sub-bands of every channel.
        bands = F.conv2d(img, self._grouped_kernels(channels, img.dtype), stride=HAAR_SIZE, groups=channels)
        bands = bands.unflatten(1, (channels, NUM_BANDS))  # (N, C, 4, H/2, W/2)
        return HaarBands(*bands.unbind(dim=2))

    def inverse(self, bands: HaarBands) -> Tensor:
        """The image whose transform is `bands`: exact, since the filters are orthonormal."""
        stacked = torch.stack(tuple(bands), dim=2).flatten(1, 2)  # (N, 4C, H/2, W/2)
        channels = stacked.shape[1] // NUM_BANDS
        kernels = self._grouped_kernels(channels, stacked.dtype)
        return F.conv_transpose2d(stacked, kernels, stride=HAAR_SIZE, groups=channels)  # (N, C, H, W)

    def high_frequency(self, img: Tensor) -> Tensor:
        """H_w(I) of eq. 7: LH, HL, HH stacked band-major, (N, 3C, H/2, W/2) as [LH_rgb, HL_rgb, HH_rgb]."""
        bands = self(img)
        return torch.cat([bands.lh, bands.hl, bands.hh], dim=1)


class EmbeddingOutput(NamedTuple):
    """E_D's verdict on a batch and the features the contrastive loss compares."""

    score: Tensor  # (N, 1): the discriminator logit trained with the contrastive discriminator loss (eq. 7)
    features: tuple[Tensor, ...]  # outputs of the first `num_feature_layers` blocks (sec. III-D: L = 4)


class EmbeddingNetwork(nn.Module):
    """E_D of PCL (paper 004 sec. III-C): Haar high-frequency sub-bands -> VGG-style discriminator.

    (N, in_channels, input_size, input_size) image -> EmbeddingOutput; `features()` works at any even size.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,  # RGB: E_D sees 3 * 3 = 9 sub-band channels
        num_features: int = 64,  # width of the first two blocks (EDSR-code discriminator)
        num_blocks: int = 8,  # conv-BN-LeakyReLU blocks; every second one has stride 2
        hidden_features: int = 1024,  # first FC layer (EDSR-code discriminator)
        input_size: int = 192,  # HR patch: 48x48 LR patches at x4 (sec. IV-A)
        num_feature_layers: int = 4,  # "the first 4 intermediate layers ... L is 4 as default" (sec. III-D)
        negative_slope: float = NEGATIVE_SLOPE,
    ) -> None:
        super().__init__()
        if not 1 <= num_feature_layers <= num_blocks:
            raise ConfigError(f"num_feature_layers={num_feature_layers} must lie in 1..num_blocks={num_blocks}")
        downsampling = HAAR_SIZE * DOWNSAMPLE_STRIDE ** (num_blocks // 2)
        if input_size < downsampling or input_size % downsampling:
            raise ConfigError(f"EmbeddingNetwork input_size={input_size} must be a positive multiple of {downsampling}")
        self.input_size = input_size
        self.num_feature_layers = num_feature_layers
        self.haar = HaarWavelet()
        blocks: list[nn.Module] = []
        channels = NUM_HIGH_BANDS * in_channels
        for index in range(num_blocks):
            width = num_features * 2 ** (index // 2)  # 64, 64, 128, 128, 256, 256, 512, 512
            stride = DOWNSAMPLE_STRIDE if index % 2 else 1
            blocks.append(
                ConvNormAct(
                    channels,
                    width,
                    kernel_size=KERNEL_SIZE,
                    stride=stride,
                    padding=KERNEL_SIZE // 2,
                    batch_norm=True,
                    bias=False,
                    negative_slope=negative_slope,
                )
            )
            channels = width
        self.blocks = nn.ModuleList(blocks)
        final_size = input_size // downsampling
        self.classifier = logit_head(channels * final_size * final_size, hidden_features, negative_slope)

    def features(self, img: Tensor, num_layers: int | None = None) -> tuple[Tensor, ...]:
        """The first `num_layers` (default num_feature_layers) block outputs: what the loss uses."""
        count = self.num_feature_layers if num_layers is None else num_layers
        x = self.haar.high_frequency(img)  # (N, 9, H/2, W/2)
        out = []
        for block in self.blocks[:count]:
            x = block(x)
            out.append(x)
        return tuple(out)

    def forward(self, img: Tensor) -> EmbeddingOutput:
        require_input_size(img, self.input_size, "EmbeddingNetwork")
        all_feats = self.features(img, num_layers=len(self.blocks))  # last: (N, 512, H/32, W/32)
        score = self.classifier(all_feats[-1].flatten(1))  # (N, 1)
        return EmbeddingOutput(score, all_feats[: self.num_feature_layers])


# ---- the PCL authors' checkpoints -------------------------------------------------------------------------
# Their discriminator: features.<2k>.0 = conv of block k, features.<2k>.1 = its BN (odd indices are the
# activations); classifier.1 / classifier.3 = the FC layers; DWT2.* = pytorch_wavelets filter buffers. Saved
# inside their loss module ("loss_module.1.") or DataParallel ("module.").
_WRAPPER_PREFIXES = ("module.", "loss_module.1.")
_CONV = re.compile(r"^features\.(\d+)\.0\.weight$")
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _strip(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    out = dict(state_dict)
    for prefix in _WRAPPER_PREFIXES:
        inside = {key[len(prefix) :]: value for key, value in out.items() if key.startswith(prefix)}
        if inside:
            out = inside
    return out


def is_official(state_dict: dict[str, Tensor]) -> bool:
    """True for a PCL-authors E_D state dict (EDSR-code discriminator layout, conv bias-free)."""
    sd = _strip(state_dict)
    return "features.0.0.weight" in sd and "classifier.1.weight" in sd and "features.0.0.bias" not in sd


def convert_official(state_dict: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(EmbeddingNetwork kwargs inferred from shapes, state dict in srtk keys) of a PCL-authors E_D."""
    sd = _strip(state_dict)
    if not is_official(sd):
        raise CheckpointError("not a PCL embedding-network checkpoint (features.<i>.0 / classifier.1 layout)")
    indices = sorted(int(m.group(1)) for key in sd if (m := _CONV.match(key)))
    if indices != list(range(0, 2 * len(indices), 2)):
        raise CheckpointError(f"PCL discriminator convs at features.{indices}: expected every second index")
    first = sd["features.0.0.weight"]
    num_features, band_channels = first.shape[:2]
    if band_channels % NUM_HIGH_BANDS:
        raise CheckpointError(f"first conv takes {band_channels} channels: not 3 sub-bands per colour")
    num_blocks = len(indices)
    hidden = sd["classifier.1.weight"]
    last_width = num_features * 2 ** ((num_blocks - 1) // 2)
    final_size = round((hidden.shape[1] / last_width) ** 0.5)
    if final_size * final_size * last_width != hidden.shape[1]:
        raise CheckpointError(f"classifier input {hidden.shape[1]} is not {last_width} x a square map")
    kwargs: dict[str, Any] = {
        "in_channels": int(band_channels) // NUM_HIGH_BANDS,
        "num_features": int(num_features),
        "num_blocks": num_blocks,
        "hidden_features": int(hidden.shape[0]),
        "input_size": final_size * HAAR_SIZE * DOWNSAMPLE_STRIDE ** (num_blocks // 2),
    }
    out: dict[str, Tensor] = {}
    for block, index in enumerate(indices):
        out[f"blocks.{block}.conv.weight"] = sd[f"features.{index}.0.weight"]
        for name in _BN_KEYS:
            if f"features.{index}.1.{name}" in sd:
                out[f"blocks.{block}.norm.{name}"] = sd[f"features.{index}.1.{name}"]
    for ours, theirs in (("hidden", "classifier.1"), ("logit", "classifier.3")):
        out[f"classifier.{ours}.weight"] = sd[f"{theirs}.weight"]
        out[f"classifier.{ours}.bias"] = sd[f"{theirs}.bias"]
    return kwargs, out
