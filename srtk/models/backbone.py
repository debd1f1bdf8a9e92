"""The stage interface every SR backbone exposes, so any method can wrap any backbone.

A backbone is four stages: shallow features from the LR image, a trunk of `num_blocks` blocks (whose
intermediate outputs a method may tap, e.g. the SPSR gradient branch, paper 000 sec. 3.2), an upsampler
that brings features to HR size, and a reconstruction to RGB. `forward` chains them.
Convention: RGB, NCHW, float in [0, 1] in and out (SR may overshoot slightly; callers clamp).
"""

from collections.abc import Sequence

from torch import Tensor, nn

from srtk.errors import ConfigError


class SRBackbone(nn.Module):
    """Base class: subclasses set `scale`, `num_features`, `num_blocks` and implement the four stages."""

    scale: int
    num_features: int  # channels of trunk and upsampled features
    num_blocks: int  # tap indices run from 1 (after the first block) to num_blocks

    def shallow(self, lr: Tensor) -> Tensor:
        """(N, 3, h, w) LR image -> (N, F, h, w) shallow features."""
        raise NotImplementedError

    def trunk(self, shallow: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
        """Shallow features -> (trunk output incl. global residual, [output of block i for i in taps])."""
        raise NotImplementedError

    def upsample(self, trunk: Tensor) -> Tensor:
        """(N, F, h, w) -> (N, F, scale*h, scale*w) HR features."""
        raise NotImplementedError

    def reconstruct(self, hr_feats: Tensor) -> Tensor:
        """(N, F, H, W) HR features -> (N, 3, H, W) SR image."""
        raise NotImplementedError

    def features(self, lr: Tensor, taps: Sequence[int]) -> list[Tensor]:
        """The outputs of the trunk blocks named by `taps` (1-based), for methods that tap the backbone."""
        _, tapped = self.trunk(self.shallow(lr), taps)
        return tapped

    def forward(self, lr: Tensor) -> Tensor:
        trunk, _ = self.trunk(self.shallow(lr))
        return self.reconstruct(self.upsample(trunk))


def evenly_spaced_taps(num_blocks: int, num_taps: int = 4) -> tuple[int, ...]:
    """Tap after every (num_blocks // num_taps)-th block: 23 RRDBs -> (5, 10, 15, 20) as in paper 000 sec. 3.2."""
    if num_blocks < num_taps:
        raise ValueError(f"cannot tap {num_taps} features from a trunk of {num_blocks} blocks")
    step = num_blocks // num_taps
    return tuple(step * k for k in range(1, num_taps + 1))


def check_taps(taps: Sequence[int], num_blocks: int) -> None:
    """ConfigError unless every tap names a trunk block, 1-based, as SRBackbone.trunk promises."""
    bad = [tap for tap in taps if not 1 <= tap <= num_blocks]
    if bad:
        raise ConfigError(f"taps {bad} outside 1..{num_blocks} (the trunk's blocks)")


def run_blocks(blocks: Sequence[nn.Module], feats: Tensor, taps: Sequence[int] = ()) -> tuple[Tensor, list[Tensor]]:
    """Run `blocks` in order: (last output, [output of block i for i in taps]), taps 1-based."""
    check_taps(taps, len(blocks))
    tapped: dict[int, Tensor] = {}
    for index, block in enumerate(blocks, start=1):
        feats = block(feats)
        if index in taps:
            tapped[index] = feats
    return feats, [tapped[tap] for tap in taps]
