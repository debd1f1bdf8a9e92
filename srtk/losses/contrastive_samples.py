"""PCL's positive and negative samples (paper 004 sec. III-B, eq. 5-6): sharpened HR images as positives, slightly
blurred HR images as hard negatives.

"we further generate K_P sharpened images as positive set P_i by applying different high-pass kernels on HR
image" (eq. 5); "Blur is blur function with a random Gaussian kernel ... the size is uniformly sampled from
{3, 5, 7, 9, 11}, and random Gaussian kernel samples the kernel width uniformly from [0.3, 1.5]" (eq. 6).

reading: "In addition to the only HR ground truth, we further generate K_P sharpened images" keeps HR as a
positive, and Table IV config 4 ("no Aug", whose numbers are Table VI's row without Pos and Neg) still trains
with L_CL, so it needs a positive and a negative without any generated sample: HR and the bicubic-upsampled LR,
the pair of the earlier contrastive SR methods the paper contrasts with (sec. III-B). The authors' release does
the same: its sample lists always start with HR and LR, the generated ones are appended. So positives are
[HR, K_P sharpened] and negatives [LR up, K_N blurred]; `use_positives` / `use_negatives` (Table VI) and
`generate_samples` (Table IV config 4) drop the generated ones, never HR or LR.
reading: eq. 5-6 define the sets "for the i-th image", so every image draws its own kernel size, width and
sharpening strength for each sample k (the release draws the sharpening strength per image too).
Random draws come from torch's global CPU generator (whatever device the images are on), which training
checkpoints: a resumed run draws the same samples.
Convention: images RGB, NCHW, float in [0, 1].
"""

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from srtk.config.train import ContrastiveConfig
from srtk.data.resize import imresize
from srtk.errors import ConfigError

# reading: the paper names no sharpening kernel. Sharpen(I) = I + a (I - smooth(I)), clamped to [0, 1]: an
# unsharp mask whose high-pass kernel is identity minus PIL's SMOOTH filter (1 1 1 / 1 5 1 / 1 1 1, over 13),
# i.e. PIL's and kornia's ImageEnhance "sharpness" with factor 1 + a, which the authors' release uses
# (kornia.enhance.sharpness). Borders use reflect padding here (PIL keeps the border pixels unsharpened).
SMOOTH_KERNEL = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))
SMOOTH_KERNEL_SUM = 13.0


class ContrastiveSamples(NamedTuple):
    """The positive and negative sets of a batch (eq. 5-6), sample-major."""

    positives: Tensor  # (1 + K_P, N, 3, H, W): HR, then the sharpened HR images (K_P = 0 when off)
    negatives: Tensor  # (1 + K_N, N, 3, H, W): bicubic-upsampled LR, then the blurred HR images


def gaussian_kernels(kernel_sizes: Tensor, sigmas: Tensor, max_size: int) -> Tensor:
    """(B, max_size, max_size): for each (odd size, width) a normalised isotropic Gaussian, centred, zero outside
    its own size. The zero border changes nothing (and reflect padding gives the same pixels whatever its width),
    so kernels of different sizes filter a batch in one grouped conv."""
    radius = max_size // 2
    offsets = torch.arange(-radius, radius + 1, device=sigmas.device, dtype=sigmas.dtype)
    squared_distance = offsets.square()[:, None] + offsets.square()[None, :]  # (S, S)
    weights = torch.exp(-squared_distance / (2 * sigmas.view(-1, 1, 1).square()))  # (B, S, S)
    inside = offsets.abs()[None, :] <= (kernel_sizes.to(sigmas.device).view(-1, 1) // 2)  # (B, S) per axis
    weights = weights * (inside[:, :, None] & inside[:, None, :])
    return weights / weights.sum(dim=(-2, -1), keepdim=True)  # the centre weight is 1: never a zero sum


def gaussian_kernel(
    kernel_size: int, sigma: float, *, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """(kernel_size, kernel_size) normalised 2-D Gaussian exp(-(x^2 + y^2) / (2 sigma^2)) / sum, centred."""
    _check_kernel_size(kernel_size)
    if sigma <= 0:
        raise ConfigError(f"a Gaussian kernel needs a positive width, got sigma={sigma}")
    # float64 for the weights: a kernel is tiny and its normalisation should not round twice.
    kernel = gaussian_kernels(
        torch.tensor([kernel_size]), torch.tensor([float(sigma)], dtype=torch.float64), kernel_size
    )
    return kernel[0].to(device=device, dtype=dtype if dtype is not None else torch.get_default_dtype())


def filter_each_image(img: Tensor, kernels: Tensor) -> Tensor:
    """Every channel of image n filtered by kernels[n] (or all by kernels[0] when there is one), reflect
    padding, same size: (N, C, H, W) x (N or 1, S, S) -> (N, C, H, W), one grouped conv."""
    num_images, channels, height, width = img.shape
    size = kernels.shape[-1]
    pad = size // 2
    if pad >= min(height, width):
        raise ConfigError(
            f"a {size}x{size} filter with reflect padding needs images larger than {pad}, got {height}x{width}"
        )
    padded = F.pad(img, (pad, pad, pad, pad), mode="reflect")
    # Images and channels become conv groups: (1, N*C, H + 2p, W + 2p) with one kernel per group.
    weight = kernels.to(img.dtype).expand(num_images, size, size).repeat_interleave(channels, dim=0)[:, None]
    out = F.conv2d(padded.reshape(1, num_images * channels, *padded.shape[-2:]), weight, groups=num_images * channels)
    return out.view(num_images, channels, height, width)


def gaussian_blur(img: Tensor, kernel_size: int, sigma: float) -> Tensor:
    """Blur(I) of eq. 6 with one Gaussian for the whole batch: per channel, reflect padding, same size."""
    kernel = gaussian_kernel(kernel_size, sigma, device=img.device, dtype=img.dtype)
    return filter_each_image(img, kernel[None])


def sharpen(img: Tensor, amount: float | Tensor) -> Tensor:
    """Sharpen(I) of eq. 5: I + a (I - smooth(I)) clamped to [0, 1] (PIL "sharpness" with factor 1 + a).

    `amount` a >= 0: one float for the batch, or an (N,) tensor with one strength per image.
    """
    kernel = torch.tensor(SMOOTH_KERNEL, device=img.device, dtype=img.dtype) / SMOOTH_KERNEL_SUM
    high_pass = img - filter_each_image(img, kernel[None])  # (delta - smooth) * I
    strength = amount.to(img).view(-1, 1, 1, 1) if isinstance(amount, Tensor) else amount
    return (img + strength * high_pass).clamp(0.0, 1.0)  # back in the image range, as PIL and kornia


def upsample_lr(lr: Tensor, size: tuple[int, int]) -> Tensor:
    """The LR image at HR size (the negative of config 4): srtk's MATLAB bicubic, clamped to [0, 1].

    The release uses F.interpolate (bicubic, align_corners=True); srtk's LR images come from MATLAB's bicubic
    imresize, so the way back is the same kernel. An LR already at `size` is taken as it is.
    """
    if tuple(lr.shape[-2:]) == tuple(size):
        return lr
    return imresize(lr, size=size).clamp(0.0, 1.0)


def _check_kernel_size(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"blur kernel sizes must be odd and positive, got {kernel_size}")


class SampleGenerator:
    """ContrastiveConfig -> (hr, lr) -> ContrastiveSamples: HR and K_P sharpened positives, LR up and K_N
    blurred negatives (eq. 5-6), every strength, size and width drawn per image from the global RNG."""

    def __init__(self, cfg: ContrastiveConfig) -> None:
        if cfg.num_positives < 0 or cfg.num_negatives < 0:
            raise ConfigError(
                f"num_positives / num_negatives must be >= 0, got {cfg.num_positives} / {cfg.num_negatives}"
            )
        if not cfg.blur_kernel_sizes:
            raise ConfigError("contrastive.blur_kernel_sizes is empty: give at least one odd size, e.g. 3")
        for size in cfg.blur_kernel_sizes:
            _check_kernel_size(size)
        sigma_low, sigma_high = cfg.blur_sigma
        if not 0 < sigma_low <= sigma_high:
            raise ConfigError(f"contrastive.blur_sigma must be (low, high) with 0 < low <= high, got {cfg.blur_sigma}")
        amount_low, amount_high = cfg.sharpen_amount
        if not 0 <= amount_low <= amount_high:
            # a negative strength blurs: it would make a "positive" a negative
            raise ConfigError(
                f"contrastive.sharpen_amount must be (low, high) with 0 <= low <= high, got {cfg.sharpen_amount}"
            )
        self.num_positives = cfg.num_positives if cfg.generate_samples and cfg.use_positives else 0
        self.num_negatives = cfg.num_negatives if cfg.generate_samples and cfg.use_negatives else 0
        self.kernel_sizes = torch.tensor(cfg.blur_kernel_sizes)
        self.max_kernel_size = max(cfg.blur_kernel_sizes)
        self.sigma_range = (float(sigma_low), float(sigma_high))
        self.amount_range = (float(amount_low), float(amount_high))

    @staticmethod
    def _uniform(num_images: int, bounds: tuple[float, float]) -> Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(num_images, dtype=torch.float64)  # CPU: the checkpointed generator

    @torch.no_grad()  # the samples are targets: nothing flows back into them
    def __call__(self, hr: Tensor, lr: Tensor) -> ContrastiveSamples:
        num_images = hr.shape[0]
        positives = [hr]
        for _ in range(self.num_positives):  # a loop over K_P; images and pixels are batched
            amounts = self._uniform(num_images, self.amount_range)
            positives.append(sharpen(hr, amounts))
        negatives = [upsample_lr(lr, (hr.shape[-2], hr.shape[-1])).to(hr.dtype)]
        for _ in range(self.num_negatives):
            sizes = self.kernel_sizes[torch.randint(len(self.kernel_sizes), (num_images,))]
            sigmas = self._uniform(num_images, self.sigma_range)
            kernels = gaussian_kernels(sizes, sigmas, self.max_kernel_size)  # (N, S, S), float64 on the CPU
            negatives.append(filter_each_image(hr, kernels.to(device=hr.device, dtype=hr.dtype)))
        return ContrastiveSamples(torch.stack(positives), torch.stack(negatives))
