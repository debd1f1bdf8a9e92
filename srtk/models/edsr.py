"""EDSR: enhanced deep residual network (Lim et al., CVPRW 2017, sec. 3.1-3.2, Fig. 2-3), and the loader
for checkpoints of the authors' EDSR-PyTorch code.

Baseline: 16 residual blocks, 64 features, no residual scaling; EDSR (large): 32 blocks, 256 features,
residual scaling 0.1 (sec. 3.2). PCL-SR (paper 004, Table II) calls them EDSR-S and EDSR-L.

The EDSR-PyTorch models take RGB in [0, 255] (rgb_range 255) and shift it by 255 * DIV2K mean; srtk's take
[0, 1]. `convert_official` absorbs the range into the first and last convolutions, so the converted model is
the same function: srtk(x) == official(255 x) / 255. The key map of the EDSR-PyTorch ends (`END_RULES`, with
`official_ends_config` and `pixel_range_transforms`) is shared with RCAN, written in the same code base.
"""

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from srtk.errors import CheckpointError
from srtk.models.backbone import SRBackbone, run_blocks
from srtk.models.blocks import (
    DIV2K_RGB_MEAN,
    RGB_CHANNELS,
    PixelShuffleUpsampler,
    ResidualBlock,
    RGBMeanShift,
    conv2d,
    upsample_stage_factors,
)
from srtk.models.official import (
    KeyMap,
    KeyRule,
    RenamedState,
    ValueTransform,
    canonicalize,
    num_indexed,
    state_shapes,
)

# EDSR sec. 3.2: with 256 features training is unstable unless residuals are scaled by 0.1; the official
# presets are res_scale 0.1 for the 256-feature EDSR and 1.0 for the 64-feature baseline.
LARGE_NUM_FEATURES = 256
LARGE_RES_SCALE = 0.1
BASELINE_RES_SCALE = 1.0

# EDSR-PyTorch's default --rgb_range: its models see pixel values in [0, 255]. Used only when a checkpoint
# lacks the mean-shift tensors that otherwise tell the range (bias = rgb_range * DIV2K mean).
EDSR_PYTORCH_RGB_RANGE = 255.0
# The mean-shift bias is stored in float32; the range it implies is an integer (255) or 1 in practice.
RGB_RANGE_DECIMALS = 3
MEAN_SHIFT_RTOL = 1e-4


class EDSR(SRBackbone):
    """EDSR / EDSR-baseline backbone. RGB, NCHW, float in [0, 1] in and out.

    Taps (1-based) are the outputs of residual block i.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        num_blocks: int = 16,  # baseline model, EDSR sec. 4.2 (EDSR-large: 32)
        num_features: int = 64,  # baseline model, EDSR sec. 4.2 (EDSR-large: 256)
        res_scale: float = BASELINE_RES_SCALE,  # EDSR sec. 3.2 (EDSR-large: 0.1)
        kernel_size: int = 3,  # every conv of EDSR is 3x3 (Fig. 3)
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_blocks = num_blocks
        self.num_features = num_features
        self.mean_shift = RGBMeanShift()
        self.head = conv2d(RGB_CHANNELS, num_features, kernel_size)
        self.blocks = nn.ModuleList(
            ResidualBlock(num_features=num_features, res_scale=res_scale, kernel_size=kernel_size)
            for _ in range(num_blocks)
        )
        self.trunk_conv = conv2d(num_features, num_features, kernel_size)
        self.upsampler = PixelShuffleUpsampler(num_features=num_features, scale=scale, kernel_size=kernel_size)
        self.reconstruction = conv2d(num_features, RGB_CHANNELS, kernel_size)

    def shallow(self, lr: Tensor) -> Tensor:
        return self.head(self.mean_shift.subtract(lr))  # (N, F, h, w)

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        feats, tapped = run_blocks(self.blocks, shallow, taps)
        trunk_feats = self.trunk_conv(feats) + shallow  # global residual (EDSR Fig. 3)
        return trunk_feats, tapped

    def upsample(self, trunk: Tensor) -> Tensor:
        return self.upsampler(trunk)  # (N, F, scale*h, scale*w)

    def reconstruct(self, hr_feats: Tensor) -> Tensor:
        return self.mean_shift.add(self.reconstruction(hr_feats))  # (N, 3, H, W)


# --- EDSR-PyTorch checkpoints (shared by EDSR and RCAN) ---------------------------------------------------


def official_rgb_range(state_dict: Mapping[str, Tensor]) -> float:
    """The --rgb_range an EDSR-PyTorch checkpoint was trained with, read from its mean-shift layers.

    Its MeanShift is a frozen 1x1 conv: weight identity / std (std 1 for every released model), bias
    -/+ rgb_range * DIV2K mean. Anything else is an unknown layout.
    """
    if "sub_mean.bias" not in state_dict or "add_mean.bias" not in state_dict:
        return EDSR_PYTORCH_RGB_RANGE
    identity = torch.eye(RGB_CHANNELS).view(RGB_CHANNELS, RGB_CHANNELS, 1, 1)
    for key in ("sub_mean.weight", "add_mean.weight"):
        if key in state_dict and not torch.equal(state_dict[key].float().cpu(), identity):
            raise CheckpointError(f"{key} is not the identity: a mean shift with rgb_std != 1 is not supported")
    add_bias = state_dict["add_mean.bias"].double().cpu()
    if not torch.equal(state_dict["sub_mean.bias"].double().cpu(), -add_bias):
        raise CheckpointError("sub_mean.bias is not the negative of add_mean.bias")
    ratio = add_bias / torch.tensor(DIV2K_RGB_MEAN, dtype=torch.float64)
    if not torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=MEAN_SHIFT_RTOL, atol=0.0):
        raise CheckpointError(f"add_mean.bias {add_bias.tolist()} is not a multiple of the DIV2K mean {DIV2K_RGB_MEAN}")
    return round(float(ratio.mean()), RGB_RANGE_DECIMALS)


def _upsampler_stage(match: re.Match[str]) -> str:
    return f"upsampler.stages.{int(match[1]) // 2}.conv.{match[2]}"


# The ends every EDSR-PyTorch model shares (EDSR, RCAN, HAN, NLSN): mean shifts, head, the sub-pixel upsampler
# (a Sequential of [conv, PixelShuffle] per stage: convs at even indices) and the reconstruction conv.
END_RULES: tuple[KeyRule, ...] = (
    (r"(?:sub|add)_mean\.(?:weight|bias)", None),  # read by official_rgb_range; ours are fixed buffers
    (r"head\.0\.(weight|bias)", r"head.\1"),
    (r"tail\.0\.(\d*[02468])\.(weight|bias)", _upsampler_stage),
    (r"tail\.1\.(weight|bias)", r"reconstruction.\1"),
)


def pixel_range_transforms(rgb_range: float) -> dict[str, ValueTransform]:
    """Absorb EDSR-PyTorch's [0, rgb_range] pixels into the first and last convs: the same function on [0, 1]."""
    return {
        # Official head sees rgb_range * (x - mean); ours sees (x - mean): scale the weight, keep the bias.
        "head.weight": lambda weight: weight * rgb_range,
        # Official output is rgb_range * (ours - mean) + rgb_range * mean: divide the last conv by the range.
        "reconstruction.weight": lambda weight: weight / rgb_range,
        "reconstruction.bias": lambda bias: bias / rgb_range,
    }


def official_ends_config(renamed: RenamedState) -> dict[str, int]:
    """`scale` and `num_features` of an EDSR-PyTorch model, from its renamed head and upsampler convs."""
    num_features, in_channels = renamed.require("head.weight").shape[:2]
    if in_channels != RGB_CHANNELS:
        raise CheckpointError(f"{renamed.sources['head.weight']} takes {in_channels} channels; srtk models are RGB")
    factors = []
    for stage in range(num_indexed(renamed.tensors, r"upsampler\.stages\.(\d+)\.conv\.weight")):
        key = f"upsampler.stages.{stage}.conv.weight"
        channels = renamed.require(key).shape[0]
        factor = math.isqrt(channels // num_features)
        if factor * factor * num_features != channels:
            raise CheckpointError(f"{renamed.sources[key]} has {channels} outputs: not F * factor^2")
        factors.append(factor)
    scale = math.prod(factors)
    try:
        supported = bool(factors) and upsample_stage_factors(scale) == factors
    except ValueError:
        supported = False
    if not supported:
        raise CheckpointError(f"upsampler stages {factors} do not form a supported scale")
    return {"scale": scale, "num_features": int(num_features)}


LAYOUT = "EDSR-PyTorch EDSR"
_EDSR_BLOCK_KEY = re.compile(r"body\.\d+\.body\.[02]\.(weight|bias)")


def is_official(state_dict: Mapping[str, Any]) -> bool:
    """True for an EDSR-PyTorch EDSR state dict (RCAN, HAN and NLSN nest their blocks differently)."""
    keys = set(canonicalize(state_dict))
    if not {"head.0.weight", "body.0.body.0.weight", "tail.1.weight"} <= keys:
        return False
    return all(_EDSR_BLOCK_KEY.fullmatch(key) for key in keys if key.startswith("body.") and ".body." in key)


def official_key_map(state: Mapping[str, Tensor]) -> KeyMap:
    """The key map of EDSR-PyTorch's EDSR for a canonical state dict (its block count places the trunk conv)."""
    num_blocks = num_indexed(state, r"body\.(\d+)\.body\.0\.weight")
    return KeyMap(
        LAYOUT,
        (
            *END_RULES,
            (r"body\.(\d+)\.body\.0\.(weight|bias)", r"blocks.\1.conv1.\2"),
            (r"body\.(\d+)\.body\.2\.(weight|bias)", r"blocks.\1.conv2.\2"),
            (rf"body\.{num_blocks}\.(weight|bias)", r"trunk_conv.\1"),  # the conv after the last block
        ),
    )


def convert_official(
    state_dict: Mapping[str, Any], *, res_scale: float | None = None
) -> tuple[dict[str, float | int], dict[str, Tensor]]:
    """EDSR-PyTorch EDSR state dict -> (EDSR kwargs, srtk state dict); same function on [0, 1] images.

    Blocks, features and scale come from the shapes. The residual scaling leaves no trace in the weights:
    pass `res_scale`, or leave None for the official presets (0.1 for 256 features, 1.0 otherwise).
    """
    state = canonicalize(state_dict)
    rgb_range = official_rgb_range(state)
    renamed = official_key_map(state).rename(state)
    config: dict[str, float | int] = {
        **official_ends_config(renamed),
        "num_blocks": num_indexed(renamed.tensors, r"blocks\.(\d+)\..*"),
    }
    if res_scale is None:
        res_scale = LARGE_RES_SCALE if config["num_features"] == LARGE_NUM_FEATURES else BASELINE_RES_SCALE
    config["res_scale"] = res_scale
    return config, renamed.finish(state_shapes(EDSR, config), pixel_range_transforms(rgb_range))
