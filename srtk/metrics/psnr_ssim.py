"""PSNR and SSIM under the papers' protocol (shared/reference/bicubic_x4.json "protocol").

PSNR/SSIM on the Y channel of MATLAB rgb2ycbcr (16-235), a border of `crop` pixels removed (crop = scale),
SSIM with an 11x11 Gaussian window, sigma 1.5, valid filtering, C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 255
(Wang et al. 2004, ssim_index.m). Everything is batched torch in float64 (Y values are 0-255 scale, and the
tables are quoted to 0.0001).
Convention: inputs RGB, NCHW, float in [0, 1], already quantized to 8-bit levels where the protocol says so.
"""

import torch
from torch import Tensor

from srtk.data.color import rgb_to_y

PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _crop(img: Tensor, crop: int) -> Tensor:
    return img[..., crop:-crop, crop:-crop] if crop > 0 else img


def _y255(img: Tensor, crop: int) -> Tensor:
    """(N, 3, H, W) [0, 1] -> (N, 1, H-2c, W-2c) Y in 0..255, float64."""
    return _crop(rgb_to_y(img.double()) * PEAK, crop)


def _check_pair(sr: Tensor, hr: Tensor) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"SR {tuple(sr.shape)} and HR {tuple(hr.shape)} differ in shape")


def _psnr_from_mse(mse: Tensor) -> Tensor:
    return 10 * torch.log10(PEAK**2 / mse.clamp_min(1e-20))  # identical images give a finite 200 dB


def psnr_y(sr: Tensor, hr: Tensor, *, crop: int = 0) -> Tensor:
    """Per-image PSNR (dB) on Y, (N,) float64."""
    _check_pair(sr, hr)
    diff = _y255(sr, crop) - _y255(hr, crop)
    return _psnr_from_mse(diff.square().mean(dim=(1, 2, 3)))


def psnr_rgb(sr: Tensor, hr: Tensor, *, crop: int = 0) -> Tensor:
    """Per-image PSNR (dB) over the three RGB channels, (N,) float64."""
    _check_pair(sr, hr)
    diff = _crop(sr.double() * PEAK, crop) - _crop(hr.double() * PEAK, crop)
    return _psnr_from_mse(diff.square().mean(dim=(1, 2, 3)))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, **tensor_args: object) -> Tensor:
    """Normalised 1-D Gaussian (MATLAB fspecial('gaussian') is its outer product)."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-coords.square() / (2 * sigma**2))
    return (window / window.sum()).to(**tensor_args)  # type: ignore[arg-type]


def _filter_valid_axis(img: Tensor, window: Tensor, dim: int) -> Tensor:
    """'valid' correlation of `img` with a 1-D `window` along `dim`, as a weighted sum of shifted views.

    CPU float64 convolutions take a slow generic path (20x slower here); taps-many fused multiply-adds over
    whole tensors are vectorized on any device. The loop runs over the 11 taps, never over channels.
    """
    taps = window.numel()
    length = img.shape[dim] - taps + 1
    out = img.narrow(dim, 0, length) * window[0]
    for k in range(1, taps):
        out = out.add_(img.narrow(dim, k, length), alpha=float(window[k]))
    return out


def _filter_valid(img: Tensor, window: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filtering of (N, C, H, W) (MATLAB filter2(w, x, 'valid'))."""
    return _filter_valid_axis(_filter_valid_axis(img, window, -1), window, -2)


def ssim_map(x: Tensor, y: Tensor, *, peak: float = PEAK) -> Tensor:
    """SSIM index map of two (N, C, H, W) images in 0..peak units, valid region only."""
    window = gaussian_window(dtype=x.dtype, device=x.device)
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    # One filtering pass over the five stacked moments instead of five passes.
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    mu_x, mu_y, xx, yy, xy = _filter_valid(stacked, window).chunk(5, dim=1)
    var_x, var_y, cov = xx - mu_x.square(), yy - mu_y.square(), xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    denominator = (mu_x.square() + mu_y.square() + c1) * (var_x + var_y + c2)
    return numerator / denominator


def ssim_y(sr: Tensor, hr: Tensor, *, crop: int = 0) -> Tensor:
    """Per-image SSIM on Y, (N,) float64."""
    _check_pair(sr, hr)
    sr_y, hr_y = _y255(sr, crop), _y255(hr, crop)
    if min(sr_y.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"image of {tuple(sr_y.shape[-2:])} after cropping is smaller than the SSIM window")
    return ssim_map(sr_y, hr_y).mean(dim=(1, 2, 3))
