"""NIQE, the no-reference Natural Image Quality Evaluator (Mittal et al. 2012), as the MATLAB release computes it.

Follows computequality.m with the released pristine model (niqe_data/modelparameters.mat, see NOTICE.txt):
MSCN coefficients from a 7x7 Gaussian (sigma 7/6, replicate borders), 96x96 blocks without overlap, 18 AGGD
features per block at two scales (the second after MATLAB bicubic imresize by 0.5), and the Mahalanobis-like
distance between the fitted and pristine multivariate Gaussians. All blocks are fitted at once in torch.
The papers do not say how their PI (papers 001, 002: Tables 1-2) and NIQE (paper 004: Table III) columns were
computed; srtk uses the Y channel of MATLAB rgb2ycbcr, rounded to integers (as the SR benchmark code does),
which gives 5.7296 on Set14 baboon like the original MATLAB code.

Flat blocks (a blank sky, the margin of a scanned page) have no negative or positive MSCN values, so their AGGD
fit is 0/0. MATLAB's nanmean/nancov then drop them; naive ports divide by zero and return NaN. Here such blocks
are dropped explicitly, and only an image with fewer than two textured blocks is refused.
"""

import math
from functools import lru_cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from srtk.data.color import rgb_to_y
from srtk.data.resize import imresize
from srtk.errors import SrtkError

BLOCK_SIZE = 96  # the recommended block size of the NIQE release
MSCN_WINDOW = 7
MSCN_SIGMA = 7 / 6
MSCN_C = 1.0  # the "+1" stabiliser in (I - mu) / (sigma + 1), intensity units 0..255
NUM_SCALES = 2
GAMMA_GRID = (0.2, 10.0, 0.001)  # estimateaggdparam.m's search grid for the shape parameter
# circshift offsets of the four pairwise products (horizontal, vertical, two diagonals), computefeature.m.
PAIR_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))
# |I - mu| below this (grey levels, 0..255) is float noise of a flat region, not structure: the filter's
# summation order leaves ~1e-13 residues whose signs would decide the AGGD fit of whole blocks. Intensities are
# integers (or their bicubic half-scale), so real deviations are orders of magnitude larger. With exact zeros
# there, all Set5/Set14 reference values match within 0.004 (with the residues, up to 0.37 off).
FLAT_TOLERANCE = 1e-6


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """(mu (36,), cov (36, 36)) of the released pristine-image model."""
    from scipy.io import loadmat  # scipy only for the .mat format; imported on first use

    with resources.as_file(resources.files("srtk.metrics") / "niqe_data" / "modelparameters.mat") as path:
        mat = loadmat(path)
    return mat["mu_prisparam"].reshape(-1).astype(np.float64), mat["cov_prisparam"].astype(np.float64)


def _gamma_table(device: torch.device) -> tuple[Tensor, Tensor]:
    start, stop, step = GAMMA_GRID
    count = int(round((stop - start) / step)) + 1
    gam = start + step * torch.arange(count, dtype=torch.float64, device=device)
    ratio = torch.exp(2 * torch.lgamma(2 / gam) - torch.lgamma(1 / gam) - torch.lgamma(3 / gam))
    return gam, ratio


def _aggd_fit(vec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Fit an asymmetric generalized Gaussian to each row of (B, N): (alpha, beta_left, beta_right)."""
    neg, pos = vec < 0, vec > 0
    left_std = torch.sqrt((vec.square() * neg).sum(1) / neg.sum(1))  # 0/0 -> NaN for flat rows (dropped later)
    right_std = torch.sqrt((vec.square() * pos).sum(1) / pos.sum(1))
    gamma_hat = left_std / right_std
    r_hat = vec.abs().mean(1).square() / vec.square().mean(1)
    r_hat_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat.square() + 1).square()
    gam, ratio = _gamma_table(vec.device)
    alpha = gam[(ratio.unsqueeze(0) - r_hat_norm.unsqueeze(1)).square().argmin(dim=1)]
    scale = torch.sqrt(torch.exp(torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    return alpha, left_std * scale, right_std * scale


def _block_features(mscn_blocks: Tensor) -> Tensor:
    """(B, h, w) MSCN blocks -> (B, 18) features of computefeature.m."""
    flat = mscn_blocks.flatten(1)
    alpha, beta_left, beta_right = _aggd_fit(flat)
    features = [alpha, (beta_left + beta_right) / 2]
    # Four shifted products fitted in one batch: circshift wraps inside each block, as blkproc + circshift.
    shifted = torch.stack([torch.roll(mscn_blocks, shifts=s, dims=(1, 2)) for s in PAIR_SHIFTS], dim=0)
    pairs = (mscn_blocks.unsqueeze(0) * shifted).flatten(2).flatten(0, 1)  # (4B, h*w)
    alpha, beta_left, beta_right = _aggd_fit(pairs)
    mean = (beta_right - beta_left) * torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    pair_feats = torch.stack([alpha, mean, beta_left, beta_right], dim=1).view(4, -1, 4)  # (shift, B, 4)
    return torch.cat([torch.stack(features, dim=1), pair_feats.permute(1, 0, 2).flatten(1)], dim=1)


def _mscn(img: Tensor, window: Tensor) -> Tensor:
    """(1, 1, H, W) -> MSCN coefficients with replicate borders, as imfilter(..., 'replicate')."""
    pad = MSCN_WINDOW // 2
    moments = F.pad(torch.cat([img, img * img], dim=1), (pad, pad, pad, pad), mode="replicate")
    filtered = F.conv2d(moments, window.expand(2, 1, -1, -1), groups=2)
    mu, second = filtered[:, :1], filtered[:, 1:]
    sigma = torch.sqrt((second - mu.square()).abs())
    centred = img - mu
    centred = torch.where(centred.abs() < FLAT_TOLERANCE, torch.zeros_like(centred), centred)
    return centred / (sigma + MSCN_C)


def _to_blocks(img: Tensor, block: int) -> Tensor:
    """(1, 1, H, W) with H, W multiples of `block` -> (num_blocks, block, block)."""
    h, w = img.shape[-2:]
    return img.view(h // block, block, w // block, block).permute(0, 2, 1, 3).reshape(-1, block, block)


def niqe_of_luma(luma: Tensor, *, block_size: int = BLOCK_SIZE) -> float:
    """NIQE of one (H, W) luma image in 0..255 units (float)."""
    luma = luma.double()
    rows, cols = (luma.shape[0] // block_size) * block_size, (luma.shape[1] // block_size) * block_size
    if rows == 0 or cols == 0:
        raise SrtkError(f"image of {tuple(luma.shape)} is smaller than one {block_size}x{block_size} NIQE block")
    img = luma[:rows, :cols].view(1, 1, rows, cols)
    coords = torch.arange(MSCN_WINDOW, dtype=torch.float64, device=img.device) - MSCN_WINDOW // 2
    g = torch.exp(-coords.square() / (2 * MSCN_SIGMA**2))
    window = torch.outer(g, g)
    window = (window / window.sum()).view(1, 1, MSCN_WINDOW, MSCN_WINDOW)
    per_scale = []
    for scale_index in range(NUM_SCALES):  # two scales: a fixed, tiny loop, not a per-channel one
        block = block_size // (2**scale_index)
        per_scale.append(_block_features(_to_blocks(_mscn(img, window), block)))
        img = imresize(img, 0.5)
    features = torch.cat(per_scale, dim=1)  # (num_blocks, 36)
    features = features[torch.isfinite(features).all(dim=1)]  # flat blocks: see module docstring
    if features.shape[0] < 2:
        raise SrtkError("image has fewer than two textured 96x96 blocks: NIQE is undefined for it")
    mu_pristine, cov_pristine = (torch.from_numpy(a).to(features.device) for a in pristine_model())
    mu_dist = features.mean(0)
    cov_dist = torch.cov(features.T)
    inv = torch.linalg.pinv((cov_pristine + cov_dist) / 2)
    delta = mu_pristine - mu_dist
    quality = float(torch.sqrt(delta @ inv @ delta))
    if not math.isfinite(quality):
        raise SrtkError("NIQE fit did not converge on this image")
    return quality


def niqe(img: Tensor, *, crop: int = 0, block_size: int = BLOCK_SIZE) -> Tensor:
    """Per-image NIQE of RGB NCHW [0, 1] images, (N,) float64: Y of MATLAB rgb2ycbcr, rounded, border crop."""
    luma = torch.round(rgb_to_y(img.double()) * 255.0)[:, 0]
    if crop > 0:
        luma = luma[:, crop:-crop, crop:-crop]
    return torch.tensor([niqe_of_luma(y, block_size=block_size) for y in luma], dtype=torch.float64)
