import json

import pytest
import torch

from srtk.data.datasets import make_lr
from srtk.data.io import quantize, read_image
from srtk.data.resize import imresize, modcrop
from srtk.errors import SrtkError
from srtk.metrics.niqe import niqe
from tests.conftest import shared_path


def test_niqe_matches_matlab_reference_values():
    reference = json.loads(shared_path("reference", "niqe", "reference_values.json").read_text())
    root = shared_path("datasets", "benchmark")
    for key, expected in reference.items():
        hr = read_image(root / key).unsqueeze(0).double()
        assert abs(float(niqe(hr)) - expected["hr"]) < 0.01, key
        sr = quantize(imresize(make_lr(modcrop(hr, 4), 4), 4))
        assert abs(float(niqe(sr, crop=4)) - expected["bicubic_x4_crop4"]) < 0.01, key


def _page(height: int = 384, width: int = 288) -> torch.Tensor:
    """A scanned page: white paper with a few lines of noisy dark 'text', mostly blank."""
    gen = torch.Generator().manual_seed(0)
    page = torch.ones(1, 3, height, width, dtype=torch.float64)
    for top in (40, 140, 240):
        page[..., top : top + 14, 20:-20] = torch.rand(1, 1, 14, width - 40, generator=gen, dtype=torch.float64)
    return quantize(page)


def test_niqe_is_finite_on_large_flat_areas():
    value = float(niqe(_page()))
    assert torch.isfinite(torch.tensor(value)) and value > 0
    sky = _page()
    sky[..., :, :] = torch.linspace(0.6, 0.7, 288, dtype=torch.float64)  # a blank, smoothly graded sky
    sky[..., 300:, :] = quantize(
        torch.rand(1, 3, 84, 288, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    )
    assert torch.isfinite(niqe(quantize(sky))).all()


def test_niqe_refuses_images_without_texture_or_too_small():
    with pytest.raises(SrtkError, match="textured"):
        niqe(torch.full((1, 3, 200, 200), 0.5, dtype=torch.float64))
    with pytest.raises(SrtkError, match="smaller than one 96x96"):
        niqe(torch.rand(1, 3, 64, 200))
