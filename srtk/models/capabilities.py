"""What a network declares about itself, so that training asks the network instead of knowing registry names.

- `outputs`: the fields its forward returns. "sr" alone for a plain SR network (a tensor); the two-branch
  generators return a NamedTuple whose fields they list (SPSR/ugsr "grad_branch", GPSR "gradient_maps").
- `accepts_hr_grid`: forward(x, hr_grid=True) takes an HR-size input (ugsr's desubpixel head; MoA needs it).
- `fusion_modules`: the child modules that fuse the branches (what a fusion-only warm-up trains).
"""

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
