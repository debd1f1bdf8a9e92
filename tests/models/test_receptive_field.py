"""Declared receptive fields (srtk.models.capabilities): perturb one LR pixel, see how far the SR moves.

In float64 a change beyond the receptive field is exactly zero, so the measured radius is the true one up to
changes that fall below float64 rounding (far taps of deep residual stacks): the declared radius must bound it,
and for the plain conv stacks it is reached exactly.
"""

import pytest
import torch
from torch import nn

from srtk.models.capabilities import receptive_field
from srtk.models.registry import build_model
from srtk.runtime import sr_image


def measured_radius(model: nn.Module, scale: int, size: int) -> int:
    """The largest LR distance (Chebyshev) from a perturbed LR pixel to an SR pixel that changed."""
    model = model.double().eval()
    lr = torch.rand(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    centre = size // 2
    bumped = lr.clone()
    bumped[..., centre, centre] += 0.5
    with torch.no_grad():
        change = (sr_image(model(bumped)) - sr_image(model(lr))).abs().amax(dim=(0, 1))
    rows, cols = torch.nonzero(change > 0, as_tuple=True)
    radius = max(int((rows // scale - centre).abs().max()), int((cols // scale - centre).abs().max()))
    assert radius < centre - 1, "the probe image is too small to see the whole receptive field"
    return radius


EXACT = {  # name, tiny options, declared radius: reached exactly
    "bicubic": ({}, 2),
    "rrdbnet-1-block": ({"num_features": 8, "num_blocks": 1, "growth_channels": 4}, 19),
    "edsr": ({"num_features": 8, "num_blocks": 2}, 8),
    "srresnet": ({"num_features": 8, "num_blocks": 2}, 12),
}


@pytest.mark.parametrize("key", sorted(EXACT))
def test_declared_receptive_field_is_the_measured_one(key: str) -> None:
    torch.manual_seed(0)
    options, declared = EXACT[key]
    model = build_model(key.split("-")[0], scale=4, **options)
    assert receptive_field(model) == declared
    assert measured_radius(model, 4, 48) == declared


BOUNDED = {  # deeper or two-branch generators: the declared radius bounds what moves
    "rrdbnet": {"num_features": 8, "num_blocks": 2, "growth_channels": 4},
    "spsr": {"num_features": 8, "num_blocks": 1, "growth_channels": 4, "num_taps": 1},
    "ugsr": {"num_features": 8, "num_blocks": 1, "growth_channels": 4, "num_gradient_blocks": 1},
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n != "rrdbnet" else n for n in sorted(BOUNDED)]
)  # spsr and ugsr run RRDBs at HR size on a probe twice their radius: slow
def test_declared_receptive_field_bounds_the_measured_one(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, scale=4, **BOUNDED[name])
    declared = receptive_field(model)
    assert declared is not None
    radius = measured_radius(model, 4, 2 * declared + 8)
    assert declared // 2 < radius <= declared


def test_global_operations_have_no_finite_receptive_field() -> None:
    assert receptive_field(build_model("rcan", num_groups=1, blocks_per_group=1)) is None  # channel attention
    assert receptive_field(build_model("rrdbnet", num_blocks=23)) == 349  # 23 RRDBs x 15 convs + 4
