"""The SPSR generator: an SR branch (any SRBackbone) guided by a gradient branch (paper 000 sec. 3.2, Fig. 3;
paper 001 sec. 3.2).

Gradient branch: M(LR) -> conv; then, for each feature tapped from the SR trunk (blocks 5/10/15/20 of 23
RRDBs), concatenate it, run a "gradient block" (an RRDB over both) and merge back to F channels; a conv and
a residual from the branch's first features close the LR part; the branch then upsamples like ESRGAN
(nearest x2 + conv + LReLU per factor 2), adds conv + LReLU and conv ("the next-to-last layer", whose
features go to the SR branch) and a 1x1 conv that outputs the HR gradient map.
SR branch: the backbone with its last reconstruction conv emitting F feature channels instead of RGB ("we
remove the last convolutional reconstruction layer"; the authors keep an F -> F conv in its place), then the
fusion block: concatenate gradient and SR features, an RRDB, a merging conv, conv + LReLU, and a conv to RGB.

The released generator (`Maclory/SPSR`, `SPSRNet`) is this network with the RRDBNet backbone; its
weights load through `convert_official`. Convention: RGB, NCHW, float in [0, 1] in and out.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from srtk.errors import CheckpointError, ConfigError
from srtk.models.backbone import SRBackbone, evenly_spaced_taps
from srtk.models.gradient import GradientMap
from srtk.models.official import KeyMap, canonicalize, num_indexed, state_shapes
from srtk.models.rrdbnet import (
    LEAKY_SLOPE,
    RRDB,
    UPSAMPLE_FACTOR,
    RRDBNet,
    UpconvUpsampler,
    conv3x3,
    sequential_esrgan_rules,
    single_rrdb_name,
)

NUM_TAPS = 4  # paper 000 sec. 3.2: features of the 5th, 10th, 15th and 20th of 23 blocks
GRADIENT_OUT_KERNEL = 1  # paper 000 sec. 3.2: "output gradient maps by a 1x1 convolution layer"


class SPSROutput(NamedTuple):
    sr: Tensor  # (N, 3, s*h, s*w) the super-resolved image
    grad_branch: Tensor  # (N, 3, s*h, s*w) the gradient branch's HR gradient map, compared with M(HR)
    lr_grad: Tensor  # (N, 3, h, w) M(LR), the gradient branch's input


class GradientBranch(nn.Module):
    """LR gradient map + tapped SR features -> (HR gradient features for fusion, HR gradient map)."""

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,  # channels of the gradient map M(LR)
        out_channels: int = 3,  # channels of the output gradient map
        num_features: int = 64,  # the SR branch's width: ESRGAN's (paper 000 sec. 5.1) and the released model's
        tap_channels: int = 64,  # channels of each tapped SR-branch feature
        num_taps: int = NUM_TAPS,
        growth_channels: int = 32,  # RRDB growth, as in the SR branch
        negative_slope: float = LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        self.head = conv3x3(in_channels, num_features)
        # One gradient block between every two tapped features (paper 000 sec. 3.2), each over the
        # concatenation [gradient features, SR features], merged back to num_features by a conv.
        self.blocks = nn.ModuleList(
            RRDB(num_features=num_features + tap_channels, growth_channels=growth_channels) for _ in range(num_taps)
        )
        self.merges = nn.ModuleList(conv3x3(num_features + tap_channels, num_features) for _ in range(num_taps))
        self.trunk_conv = conv3x3(num_features, num_features)
        self.upsampler = UpconvUpsampler(scale=scale, num_features=num_features, negative_slope=negative_slope)
        self.hr_conv = conv3x3(num_features, num_features)
        self.feature_conv = conv3x3(num_features, num_features)  # its output is what the SR branch receives
        self.out_conv = nn.Conv2d(num_features, out_channels, GRADIENT_OUT_KERNEL)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, lr_grad: Tensor, taps: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        if len(taps) != len(self.blocks):
            raise ConfigError(f"gradient branch has {len(self.blocks)} blocks but got {len(taps)} tapped features")
        head = self.head(lr_grad)  # (N, F, h, w)
        x = head
        for block, merge, tapped in zip(self.blocks, self.merges, taps, strict=True):
            x = merge(block(torch.cat([x, tapped], dim=1)))  # (N, F + F_sr, h, w) -> (N, F, h, w)
        x = head + self.trunk_conv(x)
        hr = self.upsampler(x)  # (N, F, s*h, s*w)
        grad_feats = self.feature_conv(self.act(self.hr_conv(hr)))
        return grad_feats, self.out_conv(grad_feats)


class FusionBlock(nn.Module):
    """[gradient features, SR features] -> RRDB -> merging conv -> conv + LReLU -> conv to RGB."""

    def __init__(
        self,
        *,
        num_features: int = 64,  # channels of each branch's features
        out_channels: int = 3,
        growth_channels: int = 32,
        negative_slope: float = LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        self.block = RRDB(num_features=2 * num_features, growth_channels=growth_channels)
        self.merge = conv3x3(2 * num_features, num_features)
        self.hr_conv = conv3x3(num_features, num_features)
        self.out_conv = conv3x3(num_features, out_channels)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, grad_feats: Tensor, sr_feats: Tensor) -> Tensor:
        x = self.merge(self.block(torch.cat([grad_feats, sr_feats], dim=1)))  # (N, 2F, H, W) -> (N, F, H, W)
        return self.out_conv(self.act(self.hr_conv(x)))


class SPSR(nn.Module):
    """SPSR generator around any SRBackbone: RGB, NCHW, [0, 1] LR -> SPSROutput(sr, grad_branch, lr_grad).

    Any SRBackbone works: its RGB reconstruction is dropped and its upsampled features are fused; a backbone built
    to reconstruct `num_features` channels (`RRDBNet(out_channels=64)`, as `spsr_rrdbnet` and the released model)
    keeps that stage.
    """

    outputs = frozenset({"sr", "grad_branch", "lr_grad"})  # srtk.models.capabilities
    fusion_modules = ("fusion",)  # the branches meet here (what the released code's warm-up trains alone)

    def __init__(
        self,
        *,
        backbone: SRBackbone,
        in_channels: int = 3,
        out_channels: int = 3,
        num_taps: int = NUM_TAPS,  # paper 000 sec. 3.2
        growth_channels: int = 32,  # gradient and fusion RRDBs grow like ESRGAN's (ESRGAN sec. 4.1)
        negative_slope: float = LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        # Paper 000 sec. 3.2 removes the backbone's last (RGB) reconstruction layer. The released model keeps an
        # F -> F conv there (RRDBNet built with out_channels=F): its reconstruct stage is used. A backbone whose
        # reconstruct emits RGB (EDSR, RCAN, ...) has that stage dropped and its upsampled features fused directly.
        self.reconstructs_features = getattr(backbone, "out_channels", 3) == backbone.num_features
        self.scale = backbone.scale
        self.num_features = backbone.num_features
        self.taps = evenly_spaced_taps(backbone.num_blocks, num_taps)
        self.backbone = backbone
        self.gradient_map = GradientMap()
        self.gradient_branch = GradientBranch(
            scale=backbone.scale,
            in_channels=in_channels,
            out_channels=in_channels,  # a gradient map has the channels of its image
            num_features=backbone.num_features,
            tap_channels=backbone.num_features,
            num_taps=num_taps,
            growth_channels=growth_channels,
            negative_slope=negative_slope,
        )
        self.fusion = FusionBlock(
            num_features=backbone.num_features,
            out_channels=out_channels,
            growth_channels=growth_channels,
            negative_slope=negative_slope,
        )

    def forward(self, lr: Tensor) -> SPSROutput:
        lr_grad = self.gradient_map(lr)  # M(LR), (N, 3, h, w)
        trunk, tapped = self.backbone.trunk(self.backbone.shallow(lr), self.taps)
        sr_feats = self.backbone.upsample(trunk)  # (N, F, s*h, s*w)
        if self.reconstructs_features:
            sr_feats = self.backbone.reconstruct(sr_feats)
        grad_feats, grad_branch = self.gradient_branch(lr_grad, tapped)
        return SPSROutput(sr=self.fusion(grad_feats, sr_feats), grad_branch=grad_branch, lr_grad=lr_grad)


def spsr_rrdbnet(
    *,
    scale: int = 4,  # paper 000 sec. 5.1
    in_channels: int = 3,
    out_channels: int = 3,
    num_features: int = 64,  # ESRGAN backbone (paper 000 sec. 5.1)
    num_blocks: int = 23,  # paper 000 sec. 3.2
    growth_channels: int = 32,
    num_taps: int = NUM_TAPS,
) -> SPSR:
    """The paper's SPSR-G generator: SPSR around an ESRGAN RRDBNet whose last conv emits features."""
    backbone = RRDBNet(
        scale=scale,
        in_channels=in_channels,
        out_channels=num_features,  # paper 000 sec. 3.2: the RGB reconstruction layer becomes a feature layer
        num_features=num_features,
        num_blocks=num_blocks,
        growth_channels=growth_channels,
    )
    return SPSR(
        backbone=backbone,
        in_channels=in_channels,
        out_channels=out_channels,
        num_taps=num_taps,
        growth_channels=growth_channels,
    )


# --------------------------------------------------------------------------- official checkpoint (SPSRNet)

LAYOUT = "SPSR (Maclory/SPSR SPSRNet)"
# The authors' fixed difference kernels (Get_gradient_nopadding): checked, then dropped (ours are buffers).
_OFFICIAL_KERNELS = {
    "get_g_nopadding.weight_h": torch.tensor([[0.0, 0.0, 0.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]),
    "get_g_nopadding.weight_v": torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
}


def is_official(state_dict: Mapping[str, Any]) -> bool:
    """True for the SPSR authors' generator (`SPSRNet`: `model.*` SR branch, `b_*` gradient, `f_*` fusion)."""
    state = canonicalize(state_dict)
    return all(key in state for key in ("model.0.weight", "b_fea_conv.0.weight", "f_HR_conv1.0.weight"))


def _branch_convs(state: Mapping[str, Tensor]) -> list[int]:
    return sorted({int(m[1]) for key in state if (m := re.fullmatch(r"b_module\.(\d+)\.weight", key))})


def official_key_map(state: Mapping[str, Tensor]) -> KeyMap:
    """The key map of SPSRNet for a canonical state dict (its upsampling stages set the b_module indices)."""
    # b_module is [nearest, conv, LReLU] per x2 stage, then HR conv (3n), LReLU, feature conv (3n+2).
    num_stages = max(len(_branch_convs(state)) - 2, 0)

    def branch_up(match: re.Match[str]) -> str:
        index = int(match[1])
        if index == 3 * num_stages:
            return f"gradient_branch.hr_conv.{match[2]}"
        if index == 3 * num_stages + 2:
            return f"gradient_branch.feature_conv.{match[2]}"
        return f"gradient_branch.upsampler.convs.{(index - 1) // 3}.{match[2]}"

    def gradient_block(match: re.Match[str]) -> str:  # b_block_K is 1-based
        return f"gradient_branch.blocks.{int(match[1]) - 1}.{single_rrdb_name(int(match[2]), int(match[3]))}.{match[4]}"

    def fusion_block(match: re.Match[str]) -> str:
        return f"fusion.block.{single_rrdb_name(int(match[1]), int(match[2]))}.{match[3]}"

    return KeyMap(
        LAYOUT,
        (
            (r"get_g_nopadding\.weight_[hv]", None),  # checked against ours by convert_official
            *sequential_esrgan_rules(num_stages, srtk_prefix="backbone."),
            # The SR branch's HR conv is stored twice, as HR_conv0_new.0 and as model.3n+2: one tensor here.
            (r"HR_conv0_new\.0\.(weight|bias)", r"backbone.hr_conv.\1"),
            (r"HR_conv1_new\.0\.(weight|bias)", r"backbone.out_conv.\1"),
            (r"b_fea_conv\.0\.(weight|bias)", r"gradient_branch.head.\1"),
            (r"b_block_(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", gradient_block),
            (r"b_concat_(\d+)\.0\.(weight|bias)", lambda m: f"gradient_branch.merges.{int(m[1]) - 1}.{m[2]}"),
            (r"b_LR_conv\.0\.(weight|bias)", r"gradient_branch.trunk_conv.\1"),
            (r"b_module\.(\d+)\.(weight|bias)", branch_up),
            (r"conv_w\.0\.(weight|bias)", r"gradient_branch.out_conv.\1"),
            (r"f_block\.RDB(\d)\.conv(\d)\.0\.(weight|bias)", fusion_block),
            (r"f_concat\.0\.(weight|bias)", r"fusion.merge.\1"),
            (r"f_HR_conv0\.0\.(weight|bias)", r"fusion.hr_conv.\1"),
            (r"f_HR_conv1\.0\.(weight|bias)", r"fusion.out_conv.\1"),
        ),
    )


def convert_official(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(spsr_rrdbnet kwargs inferred from shapes, SPSR state dict) from the authors' SPSRNet checkpoint."""
    state = canonicalize(state_dict)
    if not is_official(state):
        raise CheckpointError("not an SPSR checkpoint (needs model.0, b_fea_conv.0 and f_HR_conv1.0)")
    for key, kernel in _OFFICIAL_KERNELS.items():
        if key in state and not torch.equal(state[key].float().flatten(), kernel.flatten()):
            raise CheckpointError(f"SPSR checkpoint: {key} is not the central-difference kernel srtk uses")
    branch_convs = _branch_convs(state)
    num_stages = len(branch_convs) - 2
    expected = [3 * k + 1 for k in range(num_stages)] + [3 * num_stages, 3 * num_stages + 2]
    if num_stages < 0 or branch_convs != expected:
        raise CheckpointError(f"SPSR checkpoint: unexpected b_module layout {branch_convs}")

    renamed = official_key_map(state).rename(state)
    num_features, in_channels = renamed.require("backbone.shallow_conv.weight").shape[:2]
    first_growth = renamed.require("backbone.residual_trunk.blocks.0.dense_blocks.0.convs.0.weight")
    config: dict[str, Any] = {
        "scale": UPSAMPLE_FACTOR**num_stages,
        "in_channels": int(in_channels),
        "out_channels": int(renamed.require("fusion.out_conv.weight").shape[0]),
        "num_features": int(num_features),
        "num_blocks": num_indexed(renamed.tensors, r"backbone\.residual_trunk\.blocks\.(\d+)\..*"),
        "growth_channels": int(first_growth.shape[0]),
        "num_taps": num_indexed(renamed.tensors, r"gradient_branch\.blocks\.(\d+)\..*"),
    }
    return config, renamed.finish(state_shapes(spsr_rrdbnet, config))
