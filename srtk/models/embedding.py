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
Table IV compares E_D's input: Haar LH/HL/HH (config 3, the default), the RGB image itself (config 2) and an FFT
"frequency map" (config 5); `input_transform` picks one (INPUT_TRANSFORMS).
Convention: images RGB, NCHW, float in [0, 1]; even height and width for the Haar input.
"""

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import CheckpointError, ConfigError
from srtk.models.discriminators import DOWNSAMPLE_STRIDE, NEGATIVE_SLOPE, ConvNormAct, logit_head, require_input_size
from srtk.models.official import KeyMap, KeyRule, canonicalize, num_indexed, state_shapes

HAAR_SIZE = 2  # the Haar filters are 2x2, applied with stride 2
NUM_BANDS = 4  # LL, LH, HL, HH
NUM_HIGH_BANDS = 3  # LH, HL, HH feed E_D
KERNEL_SIZE = 3  # every E_D conv
SPECTRUM_PARTS = 2  # the FFT map stacks the real and the imaginary part of each colour's spectrum


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


class InputTransform(nn.Module):
    """What E_D sees of an (N, C, H, W) image: (N, channels_per_colour * C, H / downsampling, W / downsampling)."""

    channels_per_colour: int
    downsampling: int


class HaarHighFrequency(InputTransform):
    """E_D's default input (Table IV config 3): H_w(I), the LH, HL, HH sub-bands at half size (sec. III-C)."""

    channels_per_colour = NUM_HIGH_BANDS
    downsampling = HAAR_SIZE

    def __init__(self) -> None:
        super().__init__()
        self.haar = HaarWavelet()

    def forward(self, img: Tensor) -> Tensor:
        return self.haar.high_frequency(img)  # (N, 3C, H/2, W/2)


class RGBInput(InputTransform):
    """Table IV config 2: "we remove the wavelet transform and train our embedding network in RGB space"."""

    channels_per_colour = 1
    downsampling = 1

    def forward(self, img: Tensor) -> Tensor:
        return img  # (N, C, H, W)


class FourierMap(InputTransform):
    """Table IV config 5: E_D on the FFT "frequency map" of the image, at full size.

    reading: the paper names only "the FFT transform" and says the Haar map "is only half the size of the original
    image" (sec. IV-D3), so the FFT map keeps the full H x W. Each colour's orthonormal 2-D spectrum
    (torch.fft.fft2, norm="ortho": the map has the image's energy, as the orthonormal Haar bands do) is centred
    (fftshift: the low frequencies form one contiguous block instead of four corners, which zero-padded convs
    would cut apart) and split into real and imaginary parts, [Re_rgb, Im_rgb]: linear in the image, so
    differentiable everywhere, unlike magnitude (|z| at 0) and phase (wraps at +-pi).
    """

    channels_per_colour = SPECTRUM_PARTS
    downsampling = 1

    def forward(self, img: Tensor) -> Tensor:
        # FFTs take no bfloat16/float16 (and half only for powers of two on CUDA): transform in float32 at least.
        work = img if img.dtype in (torch.float32, torch.float64) else img.float()
        spectrum = torch.fft.fftshift(torch.fft.fft2(work, norm="ortho"), dim=(-2, -1))
        return torch.cat([spectrum.real, spectrum.imag], dim=1)  # (N, 2C, H, W)


# E_D's input transforms (Table IV): name -> module with `channels_per_colour` and `downsampling` (of H and W).
INPUT_TRANSFORMS: dict[str, type[InputTransform]] = {
    "haar": HaarHighFrequency,  # config 3, the paper's pipeline
    "rgb": RGBInput,  # config 2
    "fft": FourierMap,  # config 5
}


class EmbeddingOutput(NamedTuple):
    """E_D's verdict on a batch and the features the contrastive loss compares."""

    score: Tensor  # (N, 1): the discriminator logit trained with the contrastive discriminator loss (eq. 7)
    features: tuple[Tensor, ...]  # outputs of the first `num_feature_layers` blocks (sec. III-D: L = 4)


class EmbeddingNetwork(nn.Module):
    """E_D of PCL (paper 004 sec. III-C): Haar high-frequency sub-bands (or RGB, or FFT) -> VGG-style discriminator.

    (N, in_channels, input_size, input_size) image -> EmbeddingOutput; `features()` works at any size the input
    transform takes (even for Haar).
    """

    def __init__(
        self,
        *,
        input_transform: str = "haar",  # sec. III-C: Haar LH/HL/HH; "rgb" / "fft": Table IV configs 2 / 5
        in_channels: int = 3,  # RGB: with Haar, E_D sees 3 * 3 = 9 sub-band channels
        num_features: int = 64,  # width of the first two blocks (EDSR-code discriminator)
        num_blocks: int = 8,  # conv-BN-LeakyReLU blocks; every second one has stride 2
        hidden_features: int = 1024,  # first FC layer (EDSR-code discriminator)
        input_size: int = 192,  # HR patch: 48x48 LR patches (sec. III-E) at x4 (sec. IV-A)
        num_feature_layers: int = 4,  # "the first 4 intermediate layers ... L is 4 as default" (sec. III-D)
        negative_slope: float = NEGATIVE_SLOPE,
    ) -> None:
        super().__init__()
        if not 1 <= num_feature_layers <= num_blocks:
            raise ConfigError(f"num_feature_layers={num_feature_layers} must lie in 1..num_blocks={num_blocks}")
        if input_transform not in INPUT_TRANSFORMS:
            raise ConfigError(
                f"unknown input_transform {input_transform!r}; choose one of: {', '.join(INPUT_TRANSFORMS)}"
            )
        self.input_transform = input_transform
        self.input_map: InputTransform = INPUT_TRANSFORMS[input_transform]()
        downsampling = self.input_map.downsampling * DOWNSAMPLE_STRIDE ** (num_blocks // 2)
        if input_size < downsampling or input_size % downsampling:
            raise ConfigError(f"EmbeddingNetwork input_size={input_size} must be a positive multiple of {downsampling}")
        self.input_size = input_size
        self.num_feature_layers = num_feature_layers
        self._config: dict[str, Any] = {
            "input_transform": input_transform,
            "in_channels": in_channels,
            "num_features": num_features,
            "num_blocks": num_blocks,
            "hidden_features": hidden_features,
            "input_size": input_size,
            "num_feature_layers": num_feature_layers,
            "negative_slope": negative_slope,
        }
        blocks: list[nn.Module] = []
        channels = self.input_map.channels_per_colour * in_channels
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

    def card_config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this network: the `config` of its model card (PCL-F reloads it)."""
        return dict(self._config)

    def features(self, img: Tensor, num_layers: int | None = None) -> tuple[Tensor, ...]:
        """The first `num_layers` (default num_feature_layers) block outputs: what the loss uses."""
        count = self.num_feature_layers if num_layers is None else num_layers
        if not 1 <= count <= len(self.blocks):
            raise ConfigError(f"E_D has {len(self.blocks)} blocks: cannot return the first {count} as features")
        x = self.input_map(img)  # haar: (N, 9, H/2, W/2); rgb: (N, 3, H, W); fft: (N, 6, H, W)
        out = []
        for block in self.blocks[:count]:
            x = block(x)
            out.append(x)
        return tuple(out)

    def forward(self, img: Tensor) -> EmbeddingOutput:
        require_input_size(img, self.input_size, "EmbeddingNetwork")
        all_feats = self.features(img, num_layers=len(self.blocks))  # last: (N, 512, input_size / downsampling, ...)
        score = self.classifier(all_feats[-1].flatten(1))  # (N, 1)
        return EmbeddingOutput(score, all_feats[: self.num_feature_layers])


# ---- the PCL authors' checkpoints -------------------------------------------------------------------------
# Their discriminator: features.<2k>.0 = conv of block k, features.<2k>.1 = its BN (odd indices are the
# activations); classifier.1 / classifier.3 = the FC layers; DWT2.* = pytorch_wavelets filter buffers. Saved
# bare, or inside their loss module beside the other loss terms (`loss_module.1.`): E_D's keys are under it.
LAYOUT = "PCL embedding network E_D"
LOSS_MODULE_PREFIX = "loss_module.1."
_E_D = rf"(?:{re.escape(LOSS_MODULE_PREFIX)})?"  # E_D's keys, bare or under the loss module
_EVEN = r"(\d*[02468])"  # conv blocks sit at the even indices of `features`
_NORM_PARAMS = r"(weight|bias|running_mean|running_var|num_batches_tracked)"


def _block(module: str) -> Callable[[re.Match[str]], str]:
    return lambda match: f"blocks.{int(match[1]) // 2}.{module}.{match[2]}"


_RULES: tuple[KeyRule, ...] = (
    (rf"{_E_D}features\.{_EVEN}\.0\.(weight)", _block("conv")),  # bias-free convs
    (rf"{_E_D}features\.{_EVEN}\.1\.{_NORM_PARAMS}", _block("norm")),
    (rf"{_E_D}classifier\.1\.(weight|bias)", r"classifier.hidden.\1"),
    (rf"{_E_D}classifier\.3\.(weight|bias)", r"classifier.logit.\1"),
    (rf"{_E_D}DWT2\.h[01]_(?:col|row)", None),  # their fixed Haar filters; ours is a buffer
    (r"loss_module\.(?!1\.)\d+\..*", None),  # the other loss terms saved beside E_D
)


def is_official(state_dict: Mapping[str, Any]) -> bool:
    """True for a PCL-authors E_D state dict (EDSR-code discriminator layout, conv bias-free)."""
    keys = set(canonicalize(state_dict))

    def has(key: str) -> bool:
        return key in keys or LOSS_MODULE_PREFIX + key in keys

    return has("features.0.0.weight") and has("classifier.1.weight") and not has("features.0.0.bias")


def official_key_map(state: Mapping[str, Tensor]) -> KeyMap:
    """The key map of the PCL authors' E_D (the same for every canonical state dict)."""
    return KeyMap(LAYOUT, _RULES)


def convert_official(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(EmbeddingNetwork kwargs inferred from shapes, state dict in srtk keys) of a PCL-authors E_D."""
    state = canonicalize(state_dict)
    if not is_official(state):
        raise CheckpointError("not a PCL embedding-network checkpoint (features.<i>.0 / classifier.1 layout)")
    renamed = official_key_map(state).rename(state)
    num_blocks = num_indexed(renamed.tensors, r"blocks\.(\d+)\.conv\.weight")
    num_features, band_channels = renamed.require("blocks.0.conv.weight").shape[:2]
    if band_channels % NUM_HIGH_BANDS:
        raise CheckpointError(f"first conv takes {band_channels} channels: not 3 sub-bands per colour")
    last_width = renamed.require(f"blocks.{num_blocks - 1}.conv.weight").shape[0]
    hidden = renamed.require("classifier.hidden.weight")
    final_size = round((hidden.shape[1] / last_width) ** 0.5)
    if final_size * final_size * last_width != hidden.shape[1]:
        raise CheckpointError(f"classifier input {hidden.shape[1]} is not {last_width} x a square map")
    config: dict[str, Any] = {
        "in_channels": int(band_channels) // NUM_HIGH_BANDS,
        "num_features": int(num_features),
        "num_blocks": num_blocks,
        "hidden_features": int(hidden.shape[0]),
        "input_size": final_size * HAAR_SIZE * DOWNSAMPLE_STRIDE ** (num_blocks // 2),
    }
    return config, renamed.finish(state_shapes(EmbeddingNetwork, config))
