"""RRDBNet, the ESRGAN generator (Wang et al. 2018), as the SR branch of SPSR (paper 000 sec. 3.2, 5.1).

Residual-in-Residual Dense Blocks (RRDB): each is three residual dense blocks of five 3x3 convolutions
with dense connections and LeakyReLU(0.2), every residual scaled by 0.2 before it is added back.
The network: conv -> 23 RRDBs -> conv, plus a global residual (the trunk, all at LR size); then
nearest x2 + conv + LeakyReLU per factor of 2 (the upsampler); then conv + LeakyReLU + conv (reconstruction).
It implements the stage interface of `backbone.py`, so SPSR taps the outputs of blocks 5/10/15/20.

Official checkpoints: `convert_official` reads the three layouts ESRGAN weights were released in
(BasicSR's `conv_first/body.N.rdbM.convK/...`, the original ESRGAN repository's
`conv_first/RRDB_trunk.N.RDBM.convK/...` and the older sequential `model.0/model.1.sub.N.RDBM.convK.0/...`).
Convention: RGB, NCHW, float in [0, 1] in and out.
"""

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from srtk.errors import CheckpointError, ConfigError
from srtk.models.backbone import SRBackbone, run_blocks
from srtk.models.official import KeyMap, KeyRule, canonicalize, num_indexed, state_shapes

LEAKY_SLOPE = 0.2  # ESRGAN: every activation is LeakyReLU(0.2)
RESIDUAL_SCALE = 0.2  # ESRGAN sec. 3.2 "residual scaling" beta = 0.2, inside each dense block and each RRDB
NUM_DENSE_CONVS = 5  # convolutions per residual dense block (ESRGAN Fig. 4)
NUM_DENSE_BLOCKS = 3  # residual dense blocks per RRDB (ESRGAN Fig. 4)
KERNEL_SIZE = 3
PADDING = KERNEL_SIZE // 2  # "same" zero padding, as in the released models
UPSAMPLE_FACTOR = 2  # each upsampling stage is nearest x2 + conv


def num_upsample_stages(scale: int) -> int:
    """How many x2 stages reach `scale` (1, 2, 4, 8, ...); other factors are a ConfigError."""
    stages = round(math.log2(scale)) if scale >= 1 else -1
    if stages < 0 or UPSAMPLE_FACTOR**stages != scale:
        raise ConfigError(f"scale must be a power of 2 (1, 2, 4, 8); got {scale}")
    return stages


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """The 3x3, stride 1, zero-padded, biased convolution every RRDB-family layer uses."""
    return nn.Conv2d(in_channels, out_channels, KERNEL_SIZE, padding=PADDING)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; the last maps back to `num_features`, scaled, added to the input."""

    def __init__(
        self,
        *,
        num_features: int = 64,  # ESRGAN sec. 4.1
        growth_channels: int = 32,  # ESRGAN sec. 4.1 (channels each inner conv adds)
        num_convs: int = NUM_DENSE_CONVS,
        residual_scale: float = RESIDUAL_SCALE,
        negative_slope: float = LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        # conv i sees the input and the i earlier growths; the last one returns to num_features.
        self.convs = nn.ModuleList(
            conv3x3(num_features + i * growth_channels, growth_channels) for i in range(num_convs - 1)
        )
        self.convs.append(conv3x3(num_features + (num_convs - 1) * growth_channels, num_features))
        # In place: it only ever acts on a fresh conv output, and LeakyReLU's gradient needs only its output's
        # sign (a positive slope keeps it): one (N, G, h, w) tensor less per conv, in training and inference.
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        dense = x  # the first conv reads x itself: torch.cat([x]) would copy it
        for conv in self.convs[:-1]:
            feats.append(self.act(conv(dense)))  # (N, F + i*G, h, w) -> (N, G, h, w)
            dense = torch.cat(feats, dim=1)
        return x + self.residual_scale * self.convs[-1](dense)


class RRDB(nn.Module):
    """Residual in Residual Dense Block: three dense blocks in a row, their sum scaled and added back."""

    def __init__(
        self,
        *,
        num_features: int = 64,  # ESRGAN sec. 4.1; SPSR's gradient and fusion blocks use 2 x 64
        growth_channels: int = 32,  # ESRGAN sec. 4.1
        num_dense_blocks: int = NUM_DENSE_BLOCKS,
        residual_scale: float = RESIDUAL_SCALE,
        negative_slope: float = LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        self.residual_scale = residual_scale
        self.dense_blocks = nn.Sequential(
            *(
                ResidualDenseBlock(
                    num_features=num_features,
                    growth_channels=growth_channels,
                    residual_scale=residual_scale,
                    negative_slope=negative_slope,
                )
                for _ in range(num_dense_blocks)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual_scale * self.dense_blocks(x)


class RRDBTrunk(nn.Module):
    """`num_blocks` RRDBs and a conv, with a residual over the whole trunk; can hand out block outputs."""

    def __init__(self, *, num_features: int = 64, num_blocks: int = 23, growth_channels: int = 32) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            RRDB(num_features=num_features, growth_channels=growth_channels) for _ in range(num_blocks)
        )
        self.conv = conv3x3(num_features, num_features)

    def forward(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        feats, tapped = run_blocks(self.blocks, shallow, taps)
        return shallow + self.conv(feats), tapped


class UpconvUpsampler(nn.Module):
    """Nearest-neighbour x2 then conv + LeakyReLU, once per factor of 2 ("upconv" in ESRGAN/SPSR code)."""

    def __init__(self, *, scale: int = 4, num_features: int = 64, negative_slope: float = LEAKY_SLOPE) -> None:
        super().__init__()
        self.convs = nn.ModuleList(conv3x3(num_features, num_features) for _ in range(num_upsample_stages(scale)))
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:  # (N, F, h, w) -> (N, F, 2h, 2w) per stage
            x = self.act(conv(F.interpolate(x, scale_factor=UPSAMPLE_FACTOR, mode="nearest")))
        return x


class RRDBNet(SRBackbone):
    """ESRGAN generator: RGB, NCHW, [0, 1] LR -> (N, out_channels, scale*h, scale*w).

    `input_unshuffle` folds the LR image into channels first (pixel unshuffle, BasicSR's trick for its x2/x1
    Real-ESRGAN models, and the "desubpixel" head of paper 002 sec. 3.1); the upsampler then runs
    log2(scale * input_unshuffle) stages. `out_channels` other than 3 turns the last conv into a feature
    layer, which is how SPSR uses this network (paper 000 sec. 3.2).
    """

    def __init__(
        self,
        *,
        scale: int = 4,  # paper 000 sec. 5.1: "a scaling factor of 4x"
        in_channels: int = 3,
        out_channels: int = 3,
        num_features: int = 64,  # ESRGAN sec. 4.1
        num_blocks: int = 23,  # ESRGAN sec. 4.1; paper 000 sec. 3.2 "23 RRDBs in the original model"
        growth_channels: int = 32,  # ESRGAN sec. 4.1
        input_unshuffle: int = 1,  # 1: plain LR input; BasicSR x2 checkpoints use 2
        negative_slope: float = LEAKY_SLOPE,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_features = num_features
        self.num_blocks = num_blocks
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.input_unshuffle = input_unshuffle
        self.shallow_conv = conv3x3(in_channels * input_unshuffle**2, num_features)
        self.residual_trunk = RRDBTrunk(
            num_features=num_features, num_blocks=num_blocks, growth_channels=growth_channels
        )
        self.upsampler = UpconvUpsampler(
            scale=scale * input_unshuffle, num_features=num_features, negative_slope=negative_slope
        )
        self.hr_conv = conv3x3(num_features, num_features)
        self.out_conv = conv3x3(num_features, out_channels)
        self.act = nn.LeakyReLU(negative_slope)

    def shallow(self, lr: Tensor) -> Tensor:
        if self.input_unshuffle > 1:  # (N, C, h, w) -> (N, C*u*u, h/u, w/u)
            lr = F.pixel_unshuffle(lr, self.input_unshuffle)
        return self.shallow_conv(lr)

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        return self.residual_trunk(shallow, taps)

    def upsample(self, trunk: Tensor) -> Tensor:
        return self.upsampler(trunk)

    def reconstruct(self, hr_feats: Tensor) -> Tensor:
        return self.out_conv(self.act(self.hr_conv(hr_feats)))


# --------------------------------------------------------------------------- official checkpoints

BASICSR, ORIGINAL, SEQUENTIAL = "ESRGAN (BasicSR)", "ESRGAN (original repository)", "ESRGAN (old sequential)"


def single_rrdb_name(dense_block: int, conv: int) -> str:
    """srtk's name inside one RRDB for official 1-based dense block `dense_block`, conv `conv`."""
    return f"dense_blocks.{dense_block - 1}.convs.{conv - 1}"


def rrdb_rule(official_blocks: str, srtk_blocks: str, rdb: str, conv_suffix: str = "") -> KeyRule:
    """Rule for `<official_blocks>.<block>.<rdb>M.convK<suffix>.(weight|bias)`; M and K are 1-based officially."""
    pattern = rf"{official_blocks}\.(\d+)\.{rdb}(\d)\.conv(\d){re.escape(conv_suffix)}\.(weight|bias)"

    def target(match: re.Match[str]) -> str:
        return f"{srtk_blocks}.{match[1]}.{single_rrdb_name(int(match[2]), int(match[3]))}.{match[4]}"

    return pattern, target


def _upconv(match: re.Match[str]) -> str:
    return f"upsampler.convs.{int(match[1]) - 1}.{match[2]}"  # conv_upK / upconvK count from 1


_BASICSR_RULES: tuple[KeyRule, ...] = (
    (r"conv_first\.(weight|bias)", r"shallow_conv.\1"),
    rrdb_rule(r"body", "residual_trunk.blocks", "rdb"),
    (r"conv_body\.(weight|bias)", r"residual_trunk.conv.\1"),
    (r"conv_up(\d+)\.(weight|bias)", _upconv),
    (r"conv_hr\.(weight|bias)", r"hr_conv.\1"),
    (r"conv_last\.(weight|bias)", r"out_conv.\1"),
)
_ORIGINAL_RULES: tuple[KeyRule, ...] = (
    (r"conv_first\.(weight|bias)", r"shallow_conv.\1"),
    rrdb_rule(r"RRDB_trunk", "residual_trunk.blocks", "RDB"),
    (r"trunk_conv\.(weight|bias)", r"residual_trunk.conv.\1"),
    (r"upconv(\d+)\.(weight|bias)", _upconv),
    (r"HRconv\.(weight|bias)", r"hr_conv.\1"),
    (r"conv_last\.(weight|bias)", r"out_conv.\1"),
)


def sequential_esrgan_rules(num_upsample_convs: int, srtk_prefix: str = "") -> list[KeyRule]:
    """Rules for the old sequential layout `model.0, model.1.sub.N..., model.3, ...` (also SPSR's SR branch).

    Upconv stages sit at model.3, model.6, ... (nearest, conv, LReLU each), then HR conv at 3n+2 and
    the last conv at 3n+4, where n is the number of stages.
    """
    n = num_upsample_convs

    def up(match: re.Match[str]) -> str:
        return f"{srtk_prefix}upsampler.convs.{int(match[1]) // 3 - 1}.{match[2]}"

    up_indices = "|".join(str(3 * (k + 1)) for k in range(n)) or "(?!)"  # (?!): no stage, no match
    return [
        (r"model\.0\.(weight|bias)", rf"{srtk_prefix}shallow_conv.\1"),
        rrdb_rule(r"model\.1\.sub", f"{srtk_prefix}residual_trunk.blocks", "RDB", ".0"),
        (r"model\.1\.sub\.\d+\.(weight|bias)", rf"{srtk_prefix}residual_trunk.conv.\1"),
        (rf"model\.({up_indices})\.(weight|bias)", up),
        (rf"model\.{3 * n + 2}\.(weight|bias)", rf"{srtk_prefix}hr_conv.\1"),
        (rf"model\.{3 * n + 4}\.(weight|bias)", rf"{srtk_prefix}out_conv.\1"),
    ]


def num_sequential_upconvs(state_dict: Mapping[str, Tensor]) -> int:
    """n such that model.3 ... model.3n are the upconv stages; they are the indices >= 2 divisible by 3."""
    indices = {int(m[1]) for key in state_dict if (m := re.fullmatch(r"model\.(\d+)\.weight", key))}
    return sum(1 for i in indices if i >= 2 and i % 3 == 0)


def _detect_layout(state_dict: Mapping[str, Tensor]) -> str | None:
    if "conv_first.weight" in state_dict and "body.0.rdb1.conv1.weight" in state_dict:
        return BASICSR
    if "conv_first.weight" in state_dict and "RRDB_trunk.0.RDB1.conv1.weight" in state_dict:
        return ORIGINAL
    spsr_only = ("b_fea_conv.0.weight", "f_HR_conv1.0.weight")  # SPSR's generator shares the prefix
    if "model.1.sub.0.RDB1.conv1.0.weight" in state_dict and not any(k in state_dict for k in spsr_only):
        return SEQUENTIAL
    return None


def is_official(state_dict: Mapping[str, Any]) -> bool:
    """True for an ESRGAN generator in the BasicSR, original-ESRGAN or old sequential key layout."""
    return _detect_layout(canonicalize(state_dict)) is not None


def official_key_map(state: Mapping[str, Tensor]) -> KeyMap:
    """The key map of the ESRGAN layout a canonical state dict is in; all three together if it is in none."""
    sequential = sequential_esrgan_rules(num_sequential_upconvs(state))
    layouts = {BASICSR: _BASICSR_RULES, ORIGINAL: _ORIGINAL_RULES, SEQUENTIAL: sequential}
    layout = _detect_layout(state)
    if layout is None:
        return KeyMap("ESRGAN / BasicSR RRDBNet", (*_BASICSR_RULES, *_ORIGINAL_RULES, *sequential))
    return KeyMap(layout, layouts[layout])


def convert_official(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(RRDBNet kwargs inferred from shapes, state dict in srtk's names) from an ESRGAN checkpoint."""
    state = canonicalize(state_dict)
    layout = _detect_layout(state)
    if layout is None:
        raise CheckpointError("not an ESRGAN/RRDBNet checkpoint (no conv_first + body/RRDB_trunk or model.1.sub)")
    renamed = official_key_map(state).rename(state)
    num_features, shallow_in = renamed.require("shallow_conv.weight").shape[:2]
    out_channels = renamed.require("out_conv.weight").shape[0]
    growth_channels = renamed.require("residual_trunk.blocks.0.dense_blocks.0.convs.0.weight").shape[0]
    num_upconvs = num_indexed(renamed.tensors, r"upsampler\.convs\.(\d+)\.weight")
    # BasicSR's x2/x1 models pixel-unshuffle the input: conv_first sees in_channels * u^2 channels.
    # Its inputs are always RGB-like with in == out channels, which pins u.
    unshuffle = round(math.sqrt(shallow_in / out_channels)) if layout == BASICSR else 1
    if unshuffle < 1 or shallow_in != out_channels * unshuffle**2:
        unshuffle, in_channels = 1, int(shallow_in)
    else:
        in_channels = int(shallow_in) // unshuffle**2
    total_upscale = UPSAMPLE_FACTOR**num_upconvs
    if total_upscale % unshuffle:
        raise CheckpointError(f"{layout} checkpoint: x{total_upscale} upsampling cannot undo unshuffle {unshuffle}")
    config: dict[str, Any] = {
        "scale": total_upscale // unshuffle,
        "in_channels": in_channels,
        "out_channels": int(out_channels),
        "num_features": int(num_features),
        "num_blocks": num_indexed(renamed.tensors, r"residual_trunk\.blocks\.(\d+)\..*"),
        "growth_channels": int(growth_channels),
        "input_unshuffle": unshuffle,
    }
    return config, renamed.finish(state_shapes(RRDBNet, config))
