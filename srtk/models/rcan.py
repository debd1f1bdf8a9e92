"""RCAN: residual channel attention network (Zhang et al., ECCV 2018, sec. 3.1-3.4, Fig. 2-4), and the
loader for checkpoints of the authors' code (EDSR-PyTorch layout, inputs in [0, 255]).

Residual in residual: G = 10 residual groups of B = 20 residual channel-attention blocks (RCAB), 64
features, channel-attention reduction r = 16 (sec. 4.1), a long skip over the groups and EDSR's
sub-pixel upsampler. About 15.6M parameters at x4.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from srtk.models.backbone import SRBackbone, run_blocks
from srtk.models.blocks import (
    RGB_CHANNELS,
    PixelShuffleUpsampler,
    ResidualGroup,
    RGBMeanShift,
    conv2d,
)
from srtk.models.edsr import END_RULES, official_ends_config, official_rgb_range, pixel_range_transforms
from srtk.models.official import KeyMap, canonicalize, num_indexed, state_shapes


class RCAN(SRBackbone):
    """RCAN backbone. RGB, NCHW, float in [0, 1] in and out.

    Taps (1-based) are the outputs of residual group i, so `num_blocks` (the tappable units of
    SRBackbone) equals `num_groups`; each group holds `blocks_per_group` RCABs.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        num_groups: int = 10,  # G, RCAN sec. 4.1
        blocks_per_group: int = 20,  # B, RCAN sec. 4.1
        num_features: int = 64,  # C, RCAN sec. 4.1
        reduction: int = 16,  # r of the channel attention, RCAN sec. 4.1
        kernel_size: int = 3,  # all convs but the 1x1 of channel attention are 3x3 (sec. 4.1)
    ) -> None:
        super().__init__()
        self.scale = scale
        self.num_blocks = num_groups
        self.num_features = num_features
        self.mean_shift = RGBMeanShift()
        self.head = conv2d(RGB_CHANNELS, num_features, kernel_size)
        self.groups = nn.ModuleList(
            ResidualGroup(
                num_features=num_features,
                num_blocks=blocks_per_group,
                reduction=reduction,
                kernel_size=kernel_size,
            )
            for _ in range(num_groups)
        )
        self.trunk_conv = conv2d(num_features, num_features, kernel_size)
        self.upsampler = PixelShuffleUpsampler(num_features=num_features, scale=scale, kernel_size=kernel_size)
        self.reconstruction = conv2d(num_features, RGB_CHANNELS, kernel_size)

    def shallow(self, lr: Tensor) -> Tensor:
        return self.head(self.mean_shift.subtract(lr))  # F_0, (N, C, h, w)

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        feats, tapped = run_blocks(self.groups, shallow, taps)
        trunk_feats = self.trunk_conv(feats) + shallow  # long skip connection (sec. 3.2, eq. 4)
        return trunk_feats, tapped

    def upsample(self, trunk: Tensor) -> Tensor:
        return self.upsampler(trunk)

    def reconstruct(self, hr_feats: Tensor) -> Tensor:
        return self.mean_shift.add(self.reconstruction(hr_feats))


# --- official checkpoints ---------------------------------------------------------------------------------

LAYOUT = "EDSR-PyTorch RCAN"
_HAN_ONLY_KEYS = ("la.gamma", "csa.gamma", "last_conv.weight")


def is_official(state_dict: Mapping[str, Any]) -> bool:
    """True for the RCAN authors' state dict (HAN extends it with la/csa/last keys: not RCAN)."""
    keys = set(canonicalize(state_dict))
    if not {"head.0.weight", "body.0.body.0.body.0.weight", "tail.1.weight"} <= keys:
        return False
    return not any(key in keys for key in _HAN_ONLY_KEYS)


def official_key_map(state: Mapping[str, Tensor]) -> KeyMap:
    """The key map of the RCAN authors' layout for a canonical state dict (its sizes place the group convs)."""
    num_groups = num_indexed(state, r"body\.(\d+)\.body\.0\.body\.0\.weight")
    blocks_per_group = num_indexed(state, r"body\.0\.body\.(\d+)\.body\.0\.weight")
    block = r"body\.(\d+)\.body\.(\d+)\.body"  # body.G.body.B.body.*: RCAB B of residual group G
    return KeyMap(
        LAYOUT,
        (
            *END_RULES,
            (rf"{block}\.0\.(weight|bias)", r"groups.\1.blocks.\2.conv1.\3"),
            (rf"{block}\.2\.(weight|bias)", r"groups.\1.blocks.\2.conv2.\3"),
            (rf"{block}\.3\.conv_du\.0\.(weight|bias)", r"groups.\1.blocks.\2.attention.down.\3"),
            (rf"{block}\.3\.conv_du\.2\.(weight|bias)", r"groups.\1.blocks.\2.attention.up.\3"),
            (rf"body\.(\d+)\.body\.{blocks_per_group}\.(weight|bias)", r"groups.\1.conv.\2"),  # closes a group
            (rf"body\.{num_groups}\.(weight|bias)", r"trunk_conv.\1"),  # after the last group
        ),
    )


def convert_official(state_dict: Mapping[str, Any]) -> tuple[dict[str, int], dict[str, Tensor]]:
    """RCAN authors' state dict -> (RCAN kwargs, srtk state dict); the same function on [0, 1] images.

    Groups, blocks per group, features, reduction and scale come from the shapes.
    """
    state = canonicalize(state_dict)
    rgb_range = official_rgb_range(state)
    renamed = official_key_map(state).rename(state)
    config = official_ends_config(renamed)
    squeezed = renamed.require("groups.0.blocks.0.attention.down.weight").shape[0]  # C / r channels
    config |= {
        "num_groups": num_indexed(renamed.tensors, r"groups\.(\d+)\..*"),
        "blocks_per_group": num_indexed(renamed.tensors, r"groups\.0\.blocks\.(\d+)\..*"),
        "reduction": config["num_features"] // int(squeezed),
    }
    return config, renamed.finish(state_shapes(RCAN, config), pixel_range_transforms(rgb_range))
