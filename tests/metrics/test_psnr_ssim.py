import json
import math

import pytest
import torch

from srtk.config import EvalConfig
from srtk.evaluate import run_evaluation
from srtk.metrics.psnr_ssim import psnr_rgb, psnr_y, ssim_map, ssim_y
from tests.conftest import shared_path


def test_psnr_of_known_error():
    hr = torch.full((1, 3, 8, 8), 0.5, dtype=torch.float64)
    sr = hr + 10 / 255  # every RGB value off by 10 grey levels
    assert abs(float(psnr_rgb(sr, hr)) - 20 * math.log10(255 / 10)) < 1e-9
    # Y = 16 + (65.481 + 128.553 + 24.966) * v: an RGB shift of 10/255 moves Y by 219 * 10 / 255
    assert abs(float(psnr_y(sr, hr)) - 20 * math.log10(255 / (219 * 10 / 255))) < 1e-9


def test_ssim_of_identical_images_is_one_and_crop_applies():
    img = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ssim_y(img, img, crop=4), torch.ones(2, dtype=torch.float64))
    noisy = (img + 0.05 * torch.randn_like(img)).clamp(0, 1)
    assert float(ssim_y(noisy, img).max()) < 0.99


def test_ssim_map_matches_direct_formula_at_one_window():
    x = torch.rand(1, 1, 11, 11, dtype=torch.float64) * 255
    y = torch.rand(1, 1, 11, 11, dtype=torch.float64) * 255
    coords = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    w = torch.outer(g, g) / torch.outer(g, g).sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx**2, (w * y * y).sum() - my**2
    cov = (w * x * y).sum() - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = (2 * mx * my + c1) * (2 * cov + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    torch.testing.assert_close(ssim_map(x, y)[0, 0, 0, 0], expected)


def _reference() -> dict:
    return json.loads(shared_path("reference", "bicubic_x4.json").read_text())


@pytest.mark.parametrize("dataset", ["Set5", "Set14", pytest.param("Urban100", marks=pytest.mark.slow)])
def test_bicubic_x4_matches_reference_per_image(dataset):
    reference = _reference()["datasets"][dataset]
    root = shared_path("datasets", "benchmark")
    result = run_evaluation(EvalConfig(model="bicubic", datasets=(dataset.lower(),), data_root=root, device="cpu"))
    images = result.datasets[dataset].images
    assert set(images) == set(reference["images"])
    for name, expected in reference["images"].items():
        assert abs(images[name]["psnr_y"] - expected["psnr_y"]) < 0.005, name
        assert abs(images[name]["ssim_y"] - expected["ssim_y"]) < 0.0005, name
    mean = result.datasets[dataset].mean()
    assert abs(mean["psnr_y"] - reference["mean_psnr_y"]) < 0.005
    assert abs(mean["ssim_y"] - reference["mean_ssim_y"]) < 0.0005
