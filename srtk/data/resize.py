"""MATLAB-compatible bicubic imresize (antialiased when downscaling) and modcrop, in torch.

MATLAB's imresize is separable: along each axis every output pixel is a weighted sum of input pixels, with
weights from the cubic kernel (a = -0.5), stretched by 1/scale when downscaling (antialiasing), and with
mirror-symmetric borders. Here each axis becomes one dense (out x in) weight matrix, so a resize is two batched
matmuls: vectorized, batched, and the same code on CPU and GPU. srtk's LR inputs are defined by this function:
paper 002 sec. 3.1 uses "MATLAB bicubic kernel"; papers 000 sec. 5.1 and 003 sec. 4.1.1 say only "bicubic".
"""

import math
from functools import lru_cache

import torch
from torch import Tensor

CUBIC_A = -0.5  # MATLAB's (and Keys') bicubic coefficient
CUBIC_WIDTH = 4.0  # support of the cubic kernel in input pixels at scale 1


def cubic(x: Tensor) -> Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's imresize 'bicubic')."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (CUBIC_A + 2) * ax3 - (CUBIC_A + 3) * ax2 + 1
    far = CUBIC_A * ax3 - 5 * CUBIC_A * ax2 + 8 * CUBIC_A * ax - 4 * CUBIC_A
    return near * (ax <= 1) + far * ((ax > 1) & (ax <= 2))


@lru_cache(maxsize=64)
def _weight_matrix_cpu(in_len: int, out_len: int, scale: float, antialias: bool) -> Tensor:
    """(out_len, in_len) float64 matrix of MATLAB's contributions() for one axis."""
    width = CUBIC_WIDTH
    stretch = scale < 1 and antialias
    if stretch:
        width = CUBIC_WIDTH / scale
    out_pos = torch.arange(1, out_len + 1, dtype=torch.float64)
    # Output pixel centre mapped into input coordinates (1-based, as MATLAB).
    centre = out_pos / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(centre - width / 2)
    taps = math.ceil(width) + 2
    indices = left.unsqueeze(1) + torch.arange(taps, dtype=torch.float64).unsqueeze(0)  # (out, taps)
    distance = centre.unsqueeze(1) - indices
    weights = scale * cubic(distance * scale) if stretch else cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Mirror-symmetric border: index sequence 1..n, n..1, repeated.
    period = 2 * in_len
    zero_based = torch.remainder(indices - 1, period).long()
    mirrored = torch.where(zero_based < in_len, zero_based, period - 1 - zero_based)
    matrix = torch.zeros(out_len, in_len, dtype=torch.float64)
    matrix.scatter_add_(1, mirrored, weights)
    return matrix


def weight_matrix(
    in_len: int, out_len: int, scale: float, *, antialias: bool, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """MATLAB imresize weights for one axis, on `device` in `dtype` (computed in float64, cached)."""
    return _weight_matrix_cpu(in_len, out_len, float(scale), antialias).to(device=device, dtype=dtype)


def imresize(
    img: Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
    antialias: bool = True,
) -> Tensor:
    """MATLAB `imresize(img, scale, 'bicubic')` of (..., H, W) float images; no clamping or rounding.

    Give either `scale` (output size ceil(H * scale), as MATLAB) or `size` (out_h, out_w). Integer inputs are
    not accepted: convert to float first (srtk keeps images in [0, 1]).
    """
    if not img.is_floating_point():
        raise TypeError("imresize expects a floating-point tensor")
    in_h, in_w = img.shape[-2:]
    if size is None:
        if scale is None or scale <= 0:
            raise ValueError("imresize needs a positive scale or an output size")
        scale_h = scale_w = float(scale)
        size = (math.ceil(in_h * scale), math.ceil(in_w * scale))
    else:
        scale_h, scale_w = size[0] / in_h, size[1] / in_w
    out_h, out_w = size
    # Half-precision matmuls would cost accuracy MATLAB parity needs: work in at least float32.
    work = img if img.dtype in (torch.float32, torch.float64) else img.float()
    rows = weight_matrix(in_h, out_h, scale_h, antialias=antialias, dtype=work.dtype, device=work.device)
    cols = weight_matrix(in_w, out_w, scale_w, antialias=antialias, dtype=work.dtype, device=work.device)
    # MATLAB resizes the axis with the smaller scale first; for the separable linear map the order only
    # changes float rounding, so take the cheaper order (shrink before growing).
    if scale_h <= scale_w:
        out = torch.matmul(cols, torch.matmul(rows, work).transpose(-1, -2)).transpose(-1, -2)
    else:
        out = torch.matmul(rows, torch.matmul(work, cols.transpose(0, 1)))
    return out.to(img.dtype)


def modcrop(img: Tensor, scale: int) -> Tensor:
    """Crop (..., H, W) to the largest multiple of `scale` on each side, keeping the top-left corner."""
    h, w = img.shape[-2:]
    return img[..., : h - h % scale, : w - w % scale]
