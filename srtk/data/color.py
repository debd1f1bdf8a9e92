"""MATLAB-compatible colour conversion (rgb2ycbcr / ycbcr2rgb, ITU-R BT.601, studio range).

Papers 003 (sec. 4.1.2) and 004 (sec. IV-A) measure PSNR/SSIM on the Y channel of YCbCr without naming the
conversion; srtk uses MATLAB's rgb2ycbcr (the shared/reference protocol), and these constants are MATLAB's.
Convention: RGB, NCHW (or CHW), float in [0, 1]; YCbCr outputs are in [0, 1] too (Y in [16, 235] / 255).
"""

import torch
from torch import Tensor

# MATLAB rgb2ycbcr for double input in [0, 1]: rows give Y, Cb, Cr in 0..255 units.
RGB_TO_YCBCR = ((65.481, 128.553, 24.966), (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))
YCBCR_OFFSET = (16.0, 128.0, 128.0)


def _apply(matrix: Tensor, offset: Tensor, img: Tensor) -> Tensor:
    # One einsum over the channel dimension: no per-channel Python loop.
    return torch.einsum("oc,...chw->...ohw", matrix, img) + offset.view(3, 1, 1)


def rgb2ycbcr(img: Tensor) -> Tensor:
    """RGB [0, 1] -> YCbCr [0, 1] (Y in [16/255, 235/255]), MATLAB constants."""
    matrix = torch.tensor(RGB_TO_YCBCR, dtype=img.dtype, device=img.device)
    offset = torch.tensor(YCBCR_OFFSET, dtype=img.dtype, device=img.device)
    return _apply(matrix / 255.0, offset / 255.0, img)


def ycbcr2rgb(img: Tensor) -> Tensor:
    """Inverse of rgb2ycbcr."""
    matrix = torch.tensor(RGB_TO_YCBCR, dtype=torch.float64, device=img.device)
    offset = torch.tensor(YCBCR_OFFSET, dtype=torch.float64, device=img.device)
    inverse = torch.linalg.inv(matrix / 255.0)
    return _apply(inverse.to(img.dtype), (-inverse @ (offset / 255.0)).to(img.dtype), img)


def rgb_to_y(img: Tensor) -> Tensor:
    """RGB [0, 1] (..., 3, H, W) -> Y [0, 1] (..., 1, H, W), MATLAB rgb2ycbcr's luma."""
    weights = torch.tensor(RGB_TO_YCBCR[0], dtype=img.dtype, device=img.device) / 255.0
    return torch.einsum("c,...chw->...hw", weights, img).unsqueeze(-3) + YCBCR_OFFSET[0] / 255.0
