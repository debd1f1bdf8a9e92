"""`srtk gradmap`: the gradient-intensity map M(I) of an image (paper 000 eq. 2), rendered to be looked at.

M(I) of a natural image is mostly near zero with thin bright outlines, so it is normalised for display: by a high
percentile (default; robust to a few saturated edges), by its maximum, or not at all.
"""

from pathlib import Path

import torch
from torch import Tensor

from srtk.data.color import rgb_to_y
from srtk.data.io import IMAGE_SUFFIXES, read_image, write_image
from srtk.errors import SrtkError
from srtk.models.gradient import gradient_map
from srtk.paths import check_output_file

MODES = ("rgb", "luma")
NORMALIZATIONS = ("percentile", "max", "none")
DISPLAY_PERCENTILE = 99.5  # maps the top 0.5% of gradient lengths to white
# torch.quantile refuses inputs beyond 2**24 elements: estimate the percentile from an even subsample.
QUANTILE_SAMPLES = 1 << 24


def check_display_options(*, mode: str, normalize: str, gamma: float) -> None:
    """Refuse an unknown mode or normalization and a non-positive gamma (before any image is read)."""
    if mode not in MODES:
        raise SrtkError(f"unknown gradmap mode {mode!r}; choose one of: {', '.join(MODES)}")
    if normalize not in NORMALIZATIONS:
        raise SrtkError(f"unknown normalization {normalize!r}; choose one of: {', '.join(NORMALIZATIONS)}")
    if gamma <= 0:
        raise SrtkError(f"gamma must be positive, not {gamma}")


def render_gradient_map(img: Tensor, *, mode: str = "rgb", normalize: str = "percentile", gamma: float = 1.0) -> Tensor:
    """(3, H, W) RGB [0, 1] -> (3, H, W) displayable M(I) in [0, 1]."""
    check_display_options(mode=mode, normalize=normalize, gamma=gamma)
    source = rgb_to_y(img) if mode == "luma" else img
    grad = gradient_map(source.unsqueeze(0))[0]
    if normalize != "none":
        flat = grad.flatten()
        if normalize == "max":
            top = flat.max()
        else:
            sample = flat[:: max(1, flat.numel() // QUANTILE_SAMPLES)]
            top = torch.quantile(sample, DISPLAY_PERCENTILE / 100)
        grad = grad / top.clamp_min(1e-6)
    grad = grad.clamp(0, 1) ** gamma
    return grad.expand(3, -1, -1) if mode == "luma" else grad


def gradmap_file(
    source: Path, target: Path, *, mode: str = "rgb", normalize: str = "percentile", gamma: float = 1.0
) -> Path:
    """Read `source`, write its rendered M(I) to `target` (atomically; never onto `source`)."""
    check_display_options(mode=mode, normalize=normalize, gamma=gamma)
    check_output_file(target, suffixes=IMAGE_SUFFIXES, inputs=(source,))
    return write_image(target, render_gradient_map(read_image(source), mode=mode, normalize=normalize, gamma=gamma))
