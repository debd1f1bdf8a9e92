"""EDSR: enhanced deep residual network (Lim et al., CVPRW 2017, sec. 3.1-3.2, Fig. 2-3), and the loader
for checkpoints of the authors' EDSR-PyTorch code.

Baseline: 16 residual blocks, 64 features, no residual scaling; EDSR (large): 32 blocks, 256 features,
residual scaling 0.1 (sec. 3.2). PCL-SR (paper 004, Table II) calls them EDSR-S and EDSR-L.

The EDSR-PyTorch models take RGB in [0, 255] (rgb_range 255) and shift it by 255 * DIV2K mean; srtk's take
[0, 1]. `convert_official` absorbs the range into the first and last convolutions, so the converted model is
the same function: srtk(x) == official(255 x) / 255. The helpers below are shared with RCAN (same code base).
"""

import math
import re
from collections.abc import Mapping, Sequence

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


def count_official_indices(state_dict: Mapping[str, Tensor], template: str, step: int = 1) -> int:
    """How many consecutive indices 0, step, 2 step, ... fill `template` with a key of the state dict."""
    count = 0
    while template.format(count * step) in state_dict:
        count += 1
    return count


def require_official(state_dict: Mapping[str, Tensor], key: str) -> Tensor:
    """The tensor under `key`; a missing key is a CheckpointError naming it."""
    if key not in state_dict:
        raise CheckpointError(f"official checkpoint lacks {key!r}")
    return state_dict[key]


def copy_official_conv(out: dict[str, Tensor], state_dict: Mapping[str, Tensor], official: str, ours: str) -> None:
    """Copy the weight and bias of the official conv `official` to srtk's conv `ours`."""
    for param in ("weight", "bias"):
        out[f"{ours}.{param}"] = require_official(state_dict, f"{official}.{param}")


def convert_official_ends(
    state_dict: Mapping[str, Tensor],
) -> tuple[dict[str, int], dict[str, Tensor], set[str]]:
    """Head, upsampler and reconstruction of any EDSR-PyTorch model (EDSR, RCAN, HAN, NLSN share them).

    Returns (kwargs scale/num_features, srtk state dict of head/upsampler/reconstruction with the pixel
    range absorbed, the official keys consumed).
    """
    head_weight = require_official(state_dict, "head.0.weight")
    num_features, in_channels = head_weight.shape[:2]
    if in_channels != RGB_CHANNELS:
        raise CheckpointError(f"head.0.weight takes {in_channels} channels; srtk models are RGB")
    rgb_range = official_rgb_range(state_dict)

    # The official upsampler is a Sequential of [conv, PixelShuffle] per stage: convs at even indices.
    num_stages = count_official_indices(state_dict, "tail.0.{}.weight", step=2)
    factors = []
    for stage in range(num_stages):
        channels = state_dict[f"tail.0.{2 * stage}.weight"].shape[0]
        factor = math.isqrt(channels // num_features)
        if factor * factor * num_features != channels:
            raise CheckpointError(f"tail.0.{2 * stage}.weight has {channels} outputs: not F * factor^2")
        factors.append(factor)
    scale = math.prod(factors)
    try:
        supported = num_stages > 0 and upsample_stage_factors(scale) == factors
    except ValueError:
        supported = False
    if not supported:
        raise CheckpointError(f"upsampler stages {factors} do not form a supported scale")

    out: dict[str, Tensor] = {}
    copy_official_conv(out, state_dict, "head.0", "head")
    # Official head sees rgb_range * (x - mean); ours sees (x - mean): scale the weight, keep the bias.
    out["head.weight"] = head_weight * rgb_range
    for stage in range(num_stages):
        copy_official_conv(out, state_dict, f"tail.0.{2 * stage}", f"upsampler.stages.{stage}.conv")
    # Official output is rgb_range * (ours - mean) + rgb_range * mean: divide the last conv by the range.
    copy_official_conv(out, state_dict, "tail.1", "reconstruction")
    out["reconstruction.weight"] = out["reconstruction.weight"] / rgb_range
    out["reconstruction.bias"] = out["reconstruction.bias"] / rgb_range

    used = {
        "sub_mean.weight",
        "sub_mean.bias",
        "add_mean.weight",
        "add_mean.bias",
        "head.0.weight",
        "head.0.bias",
    }
    used |= {f"tail.0.{2 * stage}.{param}" for stage in range(num_stages) for param in ("weight", "bias")}
    used |= {"tail.1.weight", "tail.1.bias"}
    return {"scale": scale, "num_features": int(num_features)}, out, used


def check_all_used(state_dict: Mapping[str, Tensor], used: set[str], layout: str) -> None:
    """A key the map does not know means a different architecture: fail rather than load half of it."""
    unknown = sorted(set(state_dict) - used)
    if unknown:
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise CheckpointError(f"{len(unknown)} key(s) unknown to the {layout} layout: {shown}")


_EDSR_BLOCK_KEY = re.compile(r"body\.\d+\.body\.[02]\.(weight|bias)")


def is_official(state_dict: Mapping[str, Tensor]) -> bool:
    """True for an EDSR-PyTorch EDSR state dict (RCAN, HAN and NLSN nest their blocks differently)."""
    keys = set(state_dict)
    if not {"head.0.weight", "body.0.body.0.weight", "tail.1.weight"} <= keys:
        return False
    return all(_EDSR_BLOCK_KEY.fullmatch(key) for key in keys if key.startswith("body.") and ".body." in key)


def convert_official(
    state_dict: Mapping[str, Tensor], *, res_scale: float | None = None
) -> tuple[dict[str, float | int], dict[str, Tensor]]:
    """EDSR-PyTorch EDSR state dict -> (EDSR kwargs, srtk state dict); same function on [0, 1] images.

    Blocks, features and scale come from the shapes. The residual scaling leaves no trace in the weights:
    pass `res_scale`, or leave None for the official presets (0.1 for 256 features, 1.0 otherwise).
    """
    if not is_official(state_dict):
        raise CheckpointError("not an EDSR-PyTorch EDSR state dict (head.0 / body.N.body.0 / tail.1 keys)")
    kwargs, out, used = convert_official_ends(state_dict)
    num_blocks = count_official_indices(state_dict, "body.{}.body.0.weight")
    for block in range(num_blocks):
        copy_official_conv(out, state_dict, f"body.{block}.body.0", f"blocks.{block}.conv1")
        copy_official_conv(out, state_dict, f"body.{block}.body.2", f"blocks.{block}.conv2")
        used |= {f"body.{block}.body.{conv}.{param}" for conv in (0, 2) for param in ("weight", "bias")}
    copy_official_conv(out, state_dict, f"body.{num_blocks}", "trunk_conv")  # the conv after the last block
    used |= {f"body.{num_blocks}.weight", f"body.{num_blocks}.bias"}
    check_all_used(state_dict, used, "EDSR-PyTorch EDSR")

    if res_scale is None:
        res_scale = LARGE_RES_SCALE if kwargs["num_features"] == LARGE_NUM_FEATURES else BASELINE_RES_SCALE
    return {**kwargs, "num_blocks": num_blocks, "res_scale": res_scale}, out
