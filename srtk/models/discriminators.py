"""The critics of the GAN-based methods.

- `VGGDiscriminator`: the "VGG-style" discriminator of ESRGAN that SPSR adopts for images (D_I, paper 000
  sec. 5.1: "We also use a VGG-style network to perform discrimination"). The same class serves as
  - the gradient discriminator D_GM (paper 000 sec. 3.3, eqs. 8-9), which judges gradient maps M(I): a
    gradient map of an RGB image is again a 3-channel 128x128 map, and the authors' code builds D_GM with the
    very same VGG-128 constructor as D_I (their `define_D_grad`), so D_GM = VGGDiscriminator on M(I);
  - the structure-feature discriminator D_SF (paper 000 sec. 4.3, eq. 15): "similar to that used for the
    gradient loss, but has small differences in the network architecture since the structure features have
    different scales". The NSE gives 32 channels at 1/4 resolution (sec. 4.1, 5.1), i.e. 32x32 maps for the
    128x128 HR patches; we keep the VGG family and drop the two lowest-resolution stages (3 stride-2 stages
    instead of 5) so that the classifier still sees a 4x4 map, as in the authors' 32x32 VGG variant.
- `SRGANDiscriminator`: the discriminator of SRGAN (Ledig et al., CVPR 2017, Fig. 4) on 96x96 HR patches,
  for training SRGAN as published: eight 3x3 convs (64 -> 512, four of stride 2), two dense layers.
- `UNetDiscriminator`: the U-Net discriminator of paper 002 sec. 2.3 (after Schonfeld et al., "A U-Net based
  discriminator for GANs", CVPR 2020): a spectrally normalised encoder ending in a global real/fake logit and
  a decoder with skip connections giving a real/fake logit per pixel.

Convention: inputs NCHW float (RGB in [0, 1], gradient maps, or structure features); outputs are raw logits.
"""

import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from srtk.errors import CheckpointError, ConfigError
from srtk.models.official import KeyMap, KeyRule, canonicalize, num_indexed, state_shapes

NEGATIVE_SLOPE = 0.2  # LeakyReLU slope of the ESRGAN/SPSR discriminators (ESRGAN sec. 3; SPSR code)
MAX_WIDTH_MULTIPLIER = 8  # VGG-style widths double per stage up to 8x the base width (64 -> 512)
VGG_KERNEL_SIZE = 3  # the feature conv of every VGG stage
VGG_DOWN_KERNEL_SIZE = 4  # the stride-2 conv of every VGG stage (4x4, stride 2, pad 1 halves exactly)
VGG_DOWN_PADDING = 1
DOWNSAMPLE_STRIDE = 2


def stage_widths(num_features: int, num_stages: int) -> list[int]:
    """Channels of each VGG stage: num_features * 1, 2, 4, 8, 8, ... (64, 128, 256, 512, 512 for 5 stages)."""
    return [num_features * min(2**stage, MAX_WIDTH_MULTIPLIER) for stage in range(num_stages)]


class ConvNormAct(nn.Module):
    """Conv -> optional BatchNorm -> LeakyReLU, the unit of the VGG-style critics (ESRGAN, PCL's E_D)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int,
        stride: int,
        padding: int,
        batch_norm: bool,
        bias: bool,
        negative_slope: float = NEGATIVE_SLOPE,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias)
        self.norm: nn.Module = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x)))


def logit_head(in_features: int, hidden_features: int, negative_slope: float) -> nn.Sequential:
    """The fully connected head of the VGG-style critics: flattened features -> hidden -> one logit."""
    return nn.Sequential(
        OrderedDict(
            hidden=nn.Linear(in_features, hidden_features),
            act=nn.LeakyReLU(negative_slope),
            logit=nn.Linear(hidden_features, 1),
        )
    )


def require_input_size(x: Tensor, input_size: int, network: str) -> None:
    """Critics with a fully connected head take one square size only: say which, and how to fix it."""
    height, width = x.shape[-2:]
    if (height, width) != (input_size, input_size):
        raise ConfigError(
            f"{network} was built for {input_size}x{input_size} inputs, got {height}x{width}: "
            f"crop training patches to {input_size} or build it with input_size={height}"
        )


class VGGDiscriminator(nn.Module):
    """ESRGAN's VGG-style discriminator with batch norm: D_I, D_GM and D_SF of SPSR (paper 000 sec. 3.3, 4.3).

    `num_stages` stages of (3x3 conv, 4x4 stride-2 conv), each followed by BatchNorm (except the very first
    conv) and LeakyReLU(0.2), widths 64, 128, 256, 512, 512; then two FC layers, 8192 -> 100 -> 1.
    Input (N, in_channels, input_size, input_size) -> (N, 1) logit. The FC layer fixes the input size.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,  # RGB for D_I; M(I) of an RGB image for D_GM; 32 NSE channels for D_SF
        num_features: int = 64,  # width of the first stage (ESRGAN / SPSR code: nf = 64)
        num_stages: int = 5,  # 128 -> 4 after five stride-2 stages (ESRGAN "VGG-128")
        input_size: int = 128,  # HR patch size, paper 000 sec. 5.1: 32x32 LR patches, x4
        hidden_features: int = 100,  # first FC layer (ESRGAN / SPSR code)
        conv_bias: bool = False,  # bias of BN-followed convs: a no-op under BN; old checkpoints carry one
        negative_slope: float = NEGATIVE_SLOPE,
    ) -> None:
        super().__init__()
        downsampling = DOWNSAMPLE_STRIDE**num_stages
        if num_stages < 1 or input_size < downsampling:
            raise ConfigError(
                f"VGGDiscriminator input_size={input_size} must be at least 2**num_stages = {downsampling}"
            )
        self.input_size = input_size
        widths = stage_widths(num_features, num_stages)
        blocks: list[nn.Module] = []
        channels = in_channels
        for stage, width in enumerate(widths):
            first = stage == 0  # the very first conv sees raw input: no BN, always a bias (ESRGAN)
            blocks.append(
                ConvNormAct(
                    channels,
                    width,
                    kernel_size=VGG_KERNEL_SIZE,
                    stride=1,
                    padding=VGG_KERNEL_SIZE // 2,
                    batch_norm=not first,
                    bias=first or conv_bias,
                    negative_slope=negative_slope,
                )
            )
            blocks.append(
                ConvNormAct(
                    width,
                    width,
                    kernel_size=VGG_DOWN_KERNEL_SIZE,
                    stride=DOWNSAMPLE_STRIDE,
                    padding=VGG_DOWN_PADDING,
                    batch_norm=True,
                    bias=conv_bias,
                    negative_slope=negative_slope,
                )
            )
            channels = width
        self.features = nn.Sequential(*blocks)
        # Each 4x4 stride-2 conv (padding 1) floors an odd size: the SPSR release's 130 px gradient maps end at 4x4.
        final_size = input_size
        for _ in range(num_stages):
            final_size = (final_size + 2 * VGG_DOWN_PADDING - VGG_DOWN_KERNEL_SIZE) // DOWNSAMPLE_STRIDE + 1
        self.classifier = logit_head(channels * final_size * final_size, hidden_features, negative_slope)
        _init_kaiming(self)

    def forward(self, x: Tensor) -> Tensor:
        require_input_size(x, self.input_size, "VGGDiscriminator")
        feats = self.features(x)  # (N, 512, input_size/32, input_size/32)
        return self.classifier(feats.flatten(1))  # (N, 1)


def _init_kaiming(module: nn.Module) -> None:
    """Kaiming-normal (fan_in, gain for ReLU) weights and zero biases: the SPSR code's init of its critics."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_in")
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class SRGANDiscriminator(nn.Module):
    """SRGAN's discriminator (Ledig et al., CVPR 2017, sec. 2.2 and Fig. 4): HR patch -> (N, 1) real/fake logit.

    k3n64s1 + LeakyReLU(0.2); seven conv + BN + LeakyReLU blocks (k3 n64 s2, n128 s1, n128 s2, n256 s1, n256
    s2, n512 s1, n512 s2), i.e. `num_stages` stages of (3x3 conv, 3x3 stride-2 conv) whose width doubles from
    64 to 512; Dense(1024) + LeakyReLU + Dense(1). The paper's closing sigmoid is left out: srtk's adversarial
    losses take logits. A 96x96 input reaches the dense head as a 6x6x512 map, which fixes the input size.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,  # RGB
        num_features: int = 64,  # n64 of the first conv, doubling per stage up to 512 (Fig. 4)
        num_stages: int = 4,  # four stride-2 convs (Fig. 4): 96 -> 6
        input_size: int = 96,  # Ledig et al. sec. 3.2: 96x96 HR sub-images
        hidden_features: int = 1024,  # Dense(1024), Fig. 4
        conv_bias: bool = False,  # Fig. 4 does not say; a bias before BN is cancelled by its mean subtraction
        negative_slope: float = NEGATIVE_SLOPE,  # LeakyReLU alpha = 0.2, Ledig et al. sec. 2.2
    ) -> None:
        super().__init__()
        downsampling = DOWNSAMPLE_STRIDE**num_stages
        if num_stages < 1 or input_size < downsampling or input_size % downsampling:
            raise ConfigError(
                f"SRGANDiscriminator input_size={input_size} must be a positive multiple of "
                f"2**num_stages = {downsampling}"
            )
        self.input_size = input_size
        blocks: list[nn.Module] = []
        channels = in_channels
        for stage, width in enumerate(stage_widths(num_features, num_stages)):
            first = stage == 0  # k3n64s1 sees the image: no BN (Fig. 4), so it keeps its bias
            for stride in (1, DOWNSAMPLE_STRIDE):
                batch_norm = not (first and stride == 1)
                blocks.append(
                    ConvNormAct(
                        channels,
                        width,
                        kernel_size=VGG_KERNEL_SIZE,
                        stride=stride,
                        padding=VGG_KERNEL_SIZE // 2,
                        batch_norm=batch_norm,
                        bias=not batch_norm or conv_bias,
                        negative_slope=negative_slope,
                    )
                )
                channels = width
        self.features = nn.Sequential(*blocks)
        final_size = input_size // downsampling
        self.classifier = logit_head(channels * final_size * final_size, hidden_features, negative_slope)

    def forward(self, hr: Tensor) -> Tensor:
        require_input_size(hr, self.input_size, "SRGANDiscriminator")
        feats = self.features(hr)  # (N, 512, input_size/16, input_size/16): 6x6 for 96x96 patches
        return self.classifier(feats.flatten(1))  # (N, 1) logits


# ---- official VGG-discriminator checkpoints ----------------------------------------------------------------
# Two layouts exist: the ESRGAN/SPSR code ("old arch": features.<i>.0 = conv, features.<i>.1 = BN, conv bias
# everywhere; classifier.0 / classifier.2) and BasicSR's VGGStyleDiscriminator (conv<s>_<j>, bn<s>_<j>,
# linear1/linear2; only conv0_0 has a bias). Both name the same modules: the inference reads srtk's names.
ORIGINAL_CRITIC = "ESRGAN/SPSR VGG discriminator"
BASICSR_CRITIC = "BasicSR VGGStyleDiscriminator"
_NORM_PARAMS = r"(weight|bias|running_mean|running_var|num_batches_tracked)"


def _basicsr_block(module: str) -> Callable[[re.Match[str]], str]:
    """conv<s>_<j> / bn<s>_<j> -> our feature block 2s + j (two blocks per stage)."""
    return lambda match: f"features.{2 * int(match[1]) + int(match[2])}.{module}.{match[3]}"


_CRITIC_RULES: dict[str, tuple[KeyRule, ...]] = {
    ORIGINAL_CRITIC: (
        (r"features\.(\d+)\.0\.(weight|bias)", r"features.\1.conv.\2"),
        (rf"features\.(\d+)\.1\.{_NORM_PARAMS}", r"features.\1.norm.\2"),
        (r"classifier\.0\.(weight|bias)", r"classifier.hidden.\1"),
        (r"classifier\.2\.(weight|bias)", r"classifier.logit.\1"),
    ),
    BASICSR_CRITIC: (
        (r"conv(\d+)_([01])\.(weight|bias)", _basicsr_block("conv")),
        (rf"bn(\d+)_([01])\.{_NORM_PARAMS}", _basicsr_block("norm")),
        (r"linear1\.(weight|bias)", r"classifier.hidden.\1"),
        (r"linear2\.(weight|bias)", r"classifier.logit.\1"),
    ),
}


def _critic_layout(state: Mapping[str, Tensor]) -> str | None:
    if "features.0.0.weight" in state and "classifier.0.weight" in state:
        return ORIGINAL_CRITIC
    if "conv0_0.weight" in state and "linear1.weight" in state:
        return BASICSR_CRITIC
    return None


def is_official(state_dict: Mapping[str, Any]) -> bool:
    """True for a VGG-discriminator state dict in the ESRGAN/SPSR or BasicSR layout."""
    return _critic_layout(canonicalize(state_dict)) is not None


def official_key_map(state: Mapping[str, Tensor]) -> KeyMap:
    """The key map of the critic layout a canonical state dict is in; both together if it is in neither."""
    layout = _critic_layout(state)
    if layout is None:
        return KeyMap("VGG-128 discriminator", tuple(rule for rules in _CRITIC_RULES.values() for rule in rules))
    return KeyMap(layout, _CRITIC_RULES[layout])


def convert_official(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(VGGDiscriminator kwargs inferred from shapes, state dict in srtk keys) of an official checkpoint."""
    state = canonicalize(state_dict)
    if _critic_layout(state) is None:
        raise CheckpointError("not a VGG-discriminator checkpoint (ESRGAN/SPSR or BasicSR layout)")
    renamed = official_key_map(state).rename(state)
    num_convs = num_indexed(renamed.tensors, r"features\.(\d+)\.conv\.weight")
    if num_convs < 2 or num_convs % 2:
        raise CheckpointError(f"VGG discriminator with {num_convs} convs: expected pairs per stage")
    num_features, in_channels = renamed.require("features.0.conv.weight").shape[:2]
    num_stages = num_convs // 2
    widths = stage_widths(num_features, num_stages)
    found = [renamed.require(f"features.{block}.conv.weight").shape[0] for block in range(num_convs)]
    if found != [width for width in widths for _ in range(2)]:
        raise CheckpointError(f"VGG discriminator widths {found} are not the VGG-style {widths} progression")
    hidden_weight = renamed.require("classifier.hidden.weight")
    final_size = round((hidden_weight.shape[1] / widths[-1]) ** 0.5)
    if final_size * final_size * widths[-1] != hidden_weight.shape[1]:
        raise CheckpointError(f"classifier input {hidden_weight.shape[1]} is not {widths[-1]} x a square map")
    for block in range(1, num_convs):  # pre-0.4.1 PyTorch saved no BN step count: start it at 0, as a fresh BN
        if f"features.{block}.norm.running_mean" in renamed.tensors:
            renamed.default(f"features.{block}.norm.num_batches_tracked", torch.tensor(0))
    config: dict[str, Any] = {
        "in_channels": int(in_channels),
        "num_features": int(num_features),
        "num_stages": num_stages,
        "input_size": final_size * DOWNSAMPLE_STRIDE**num_stages,
        "hidden_features": int(hidden_weight.shape[0]),
        "conv_bias": "features.1.conv.bias" in renamed.tensors,
    }
    return config, renamed.finish(state_shapes(VGGDiscriminator, config))


# ---- U-Net discriminator (paper 002 sec. 2.3) --------------------------------------------------------------


class UNetOutput(NamedTuple):
    """What the U-Net discriminator says about a batch."""

    global_logit: Tensor  # (N, 1): the encoder's image-level decision, D_U^enc
    pixel_logits: Tensor  # (N, 1, H, W): the decoder's per-pixel decision, D_U^dec
    features: tuple[Tensor, ...]  # every encoder and decoder block's output: D_U^l of the feature-matching loss


def _sn_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2))


class _DownBlock(nn.Module):
    """Residual encoder block (BigGAN D-block, as Schonfeld et al.): act-conv-act-conv-pool + 1x1 shortcut."""

    def __init__(self, in_channels: int, out_channels: int, *, negative_slope: float) -> None:
        super().__init__()
        self.act = nn.LeakyReLU(negative_slope)
        self.conv1 = _sn_conv(in_channels, out_channels, VGG_KERNEL_SIZE)
        self.conv2 = _sn_conv(out_channels, out_channels, VGG_KERNEL_SIZE)
        self.shortcut = _sn_conv(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        residual = self.conv2(self.act(self.conv1(self.act(x))))
        return F.avg_pool2d(residual + self.shortcut(x), DOWNSAMPLE_STRIDE)  # (N, out, H/2, W/2)


class _UpBlock(nn.Module):
    """Residual decoder block: upsample x2, concatenate the encoder skip, act-conv-act-conv + 1x1 shortcut."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, *, negative_slope: float) -> None:
        super().__init__()
        self.act = nn.LeakyReLU(negative_slope)
        self.conv1 = _sn_conv(in_channels + skip_channels, out_channels, VGG_KERNEL_SIZE)
        self.conv2 = _sn_conv(out_channels, out_channels, VGG_KERNEL_SIZE)
        self.shortcut = _sn_conv(in_channels + skip_channels, out_channels, 1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=DOWNSAMPLE_STRIDE, mode="nearest")  # (N, in, 2h, 2w)
        joined = torch.cat([x, skip], dim=1)
        return self.conv2(self.act(self.conv1(self.act(joined)))) + self.shortcut(joined)


class UNetDiscriminator(nn.Module):
    """U-Net discriminator of paper 002 sec. 2.3 (Schonfeld et al. 2020), spectral norm on every layer.

    Encoder: a 3x3 stem and `num_levels` residual down-blocks (widths 2x per level, capped at 8x); its
    bottleneck gives the global logit through global sum pooling and a linear layer. Decoder: `num_levels`
    residual up-blocks, each fed the encoder feature of its resolution through a skip connection; a 1x1 conv
    gives one logit per pixel. Input (N, C, H, W) with H and W multiples of 2**num_levels.
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_features: int = 64,  # stem width; paper 002 gives none: ESRGAN's / Real-ESRGAN's base width
        num_levels: int = 3,  # not stated in paper 002: three, as Real-ESRGAN; 128 patch -> 16x16 bottleneck
        negative_slope: float = NEGATIVE_SLOPE,
    ) -> None:
        super().__init__()
        self.num_levels = num_levels
        widths = [num_features * min(2**level, MAX_WIDTH_MULTIPLIER) for level in range(num_levels + 1)]
        self.stem = _sn_conv(in_channels, widths[0], VGG_KERNEL_SIZE)
        self.encoder = nn.ModuleList(
            _DownBlock(widths[level], widths[level + 1], negative_slope=negative_slope) for level in range(num_levels)
        )
        self.act = nn.LeakyReLU(negative_slope)
        self.global_head = spectral_norm(nn.Linear(widths[-1], 1))
        # decoder level k goes from widths[k+1] to widths[k] at the resolution of encoder level k
        self.decoder = nn.ModuleList(
            _UpBlock(widths[level + 1], widths[level], widths[level], negative_slope=negative_slope)
            for level in reversed(range(num_levels))
        )
        self.pixel_head = _sn_conv(widths[0], 1, 1)

    def forward(self, x: Tensor) -> UNetOutput:
        multiple = DOWNSAMPLE_STRIDE**self.num_levels
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise ConfigError(
                f"UNetDiscriminator with {self.num_levels} levels needs sides divisible by {multiple}, "
                f"got {x.shape[-2]}x{x.shape[-1]}"
            )
        skips = [self.stem(x)]  # (N, F, H, W)
        for block in self.encoder:
            skips.append(block(skips[-1]))  # level k: (N, widths[k], H/2^k, W/2^k)
        bottleneck = skips.pop()  # (N, widths[-1], H/2^L, W/2^L)
        # Global sum pooling (BigGAN / U-Net GAN): the logit scales with the image area, like theirs.
        global_logit = self.global_head(self.act(bottleneck).sum(dim=(2, 3)))  # (N, 1)
        decoded = [bottleneck]
        for block, skip in zip(self.decoder, reversed(skips), strict=True):
            decoded.append(block(decoded[-1], skip))  # back up one level per block
        pixel_logits = self.pixel_head(self.act(decoded[-1]))  # (N, 1, H, W)
        features = (*skips[1:], *decoded)  # encoder blocks (bottleneck included once) then decoder blocks
        return UNetOutput(global_logit, pixel_logits, features)
