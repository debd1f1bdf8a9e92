"""What a network declares about itself, so that training asks the network instead of knowing registry names.

- `outputs`: the fields its forward returns. "sr" alone for a plain SR network (a tensor); the two-branch
  generators return a NamedTuple whose fields they list (SPSR/ugsr "grad_branch", GPSR "gradient_maps").
- `accepts_hr_grid`: forward(x, hr_grid=True) takes an HR-size input (ugsr's desubpixel head; MoA needs it).
- `fusion_modules`: the child modules that fuse the branches (what a fusion-only warm-up trains).
- `receptive_field`: how many LR pixels of context a tile needs (srtk.tiling); `fp16_safe`: may run in fp16.
"""

from collections.abc import Callable

from torch import nn

SR = "sr"  # the super-resolved image, (N, 3, s*h, s*w)
GRADIENT_BRANCH = "grad_branch"  # an HR gradient map estimated by a gradient branch, compared with M(HR)
GRADIENT_MAPS = "gradient_maps"  # GPSR's multi-scale gradient maps G_1..G_N


def outputs_of(network: nn.Module) -> frozenset[str]:
    """The output fields `network` declares; a network that declares none returns the SR image alone."""
    return frozenset(getattr(network, "outputs", (SR,)))


def accepts_hr_grid(network: nn.Module) -> bool:
    return bool(getattr(network, "accepts_hr_grid", False))


def fusion_modules(network: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(network, "fusion_modules", ()))


# ------------------------------------------------------------------------------------------ receptive fields
# How far, in LR pixels, an SR pixel can depend on the LR image: an SR pixel whose LR position is (y, x) reads
# only LR pixels within this Chebyshev radius. Tiling pads each tile by it, so tiled and untiled SR agree to
# float rounding. Derived per architecture from its convolutions (a 3x3 conv at LR size adds 1, one at HR size
# 1/scale); tests/models/test_receptive_field.py perturbs one LR pixel and checks that nothing beyond it moves.
# None: unbounded (global pooling or attention: RCAN/HAN channel attention, NLSN non-local attention) or not
# derived (GPSR's encoder-decoder); tiling then uses a fixed context and blends the seams.

DENSE_BLOCK_RADIUS = 5  # an ESRGAN residual dense block: five 3x3 convs in a row
RRDB_RADIUS = 3 * DENSE_BLOCK_RADIUS  # an RRDB: three dense blocks
UPSAMPLING_RADIUS = 2  # every upsampler + HR reconstruction here reaches at most 2 LR pixels (a sum of 1/2^k terms)


def _rrdbnet(network: nn.Module) -> int:
    # shallow conv, the RRDBs and the trunk conv at LR (times the unshuffle factor), then the upsampler and
    # HR convs: for B = 1 the measured radius is exactly 19.
    unshuffle = int(getattr(network, "input_unshuffle", 1))
    return unshuffle * (1 + RRDB_RADIUS * int(network.num_blocks) + 1) + UPSAMPLING_RADIUS


def _edsr(network: nn.Module) -> int:
    return 1 + 2 * int(network.num_blocks) + 1 + UPSAMPLING_RADIUS  # head, two convs per block, trunk conv


def _srresnet(network: nn.Module) -> int:
    # a 9x9 head (4), two 3x3 convs per block, the trunk conv; upsampler plus the 9x9 reconstruction at HR (4/s)
    return 4 + 2 * int(network.num_blocks) + 1 + UPSAMPLING_RADIUS + 1


def _gradient_guided(trunk_radius: int, last_tap_radius: int, num_taps: int, scale: int, hr_convs: int) -> int:
    """An upper bound for SPSR/ugsr: the longest LR path (the SR trunk; a tap, then its gradient block and merge;
    or the gradient branch alone), then the branch's trunk conv and upsampler, then `hr_convs` 3x3 convs at HR."""
    gradient_block = RRDB_RADIUS + 1  # an RRDB and its merging conv
    lr_path = max(
        trunk_radius,
        last_tap_radius + gradient_block,
        1 + 1 + num_taps * gradient_block,  # M(LR) (central differences), the branch head, every block
    )
    return lr_path + 1 + UPSAMPLING_RADIUS + -(-hr_convs // scale)


def _spsr(network: nn.Module) -> int | None:
    backbone_radius = receptive_field(network.backbone)
    if backbone_radius is None:
        return None
    last_tap = max(network.taps)
    # the backbone's shallow conv and blocks up to the last tap; the fusion RRDB, merge, HR and out convs at HR
    return _gradient_guided(backbone_radius, 1 + RRDB_RADIUS * last_tap, len(network.taps), network.scale, 20)


def _ugsr(network: nn.Module) -> int:
    trunk = 1 + RRDB_RADIUS * int(network.num_blocks) + 1
    last_tap = 1 + RRDB_RADIUS * max(network.taps)
    return _gradient_guided(trunk, last_tap, len(network.taps), network.scale, RRDB_RADIUS + 4)


def _bicubic(network: nn.Module) -> int:
    return 2  # the cubic kernel reaches 2 LR pixels either side


# By class name, so that this module imports no architecture (they may import it).
RECEPTIVE_FIELDS: dict[str, Callable[[nn.Module], int | None]] = {
    "Bicubic": _bicubic,
    "RRDBNet": _rrdbnet,
    "EDSR": _edsr,
    "SRResNet": _srresnet,
    "SPSR": _spsr,
    "UGSR": _ugsr,
    "OnnxModel": lambda exported: exported.receptive_field_lr,  # recorded by `srtk export` in the file
}
# Architectures whose activations stay inside fp16's range (no un-normalised growth): `--precision auto` may run
# them in fp16 on GPUs without bf16. RRDBNet scales every residual by 0.2; EDSR/SRResNet are plain conv stacks.
FP16_SAFE = frozenset({"Bicubic", "RRDBNet", "EDSR", "SRResNet"})


def _unwrapped(network: nn.Module) -> nn.Module:
    inner = getattr(network, "network", None)  # the registry's SRImage wraps the generator
    return inner if isinstance(inner, nn.Module) else network


def receptive_field(network: nn.Module) -> int | None:
    """LR radius an SR pixel depends on (see above); None when unbounded or not derived."""
    network = _unwrapped(network)
    rule = RECEPTIVE_FIELDS.get(type(network).__name__)
    return None if rule is None else rule(network)


def fp16_safe(network: nn.Module) -> bool:
    network = _unwrapped(network)
    return type(network).__name__ in FP16_SAFE or getattr(network, "fp16_safe", False) is True
