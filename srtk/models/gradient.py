"""The gradient-intensity operator M(I) shared by every method (SPSR, paper 000 sec. 3.2, eq. 2)."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# sqrt has an infinite slope at 0: flat regions would give NaN gradients. The SPSR authors'
# Get_gradient adds the same 1e-6 under the root (their lr_grad of a flat patch is 1e-3).
GRADIENT_EPS = 1e-6


class GradientMap(nn.Module):
    """M(I): per-channel gradient length from central differences (SPSR eq. 2).

    RGB (or any C), NCHW -> same shape; borders see zero padding, as in the authors' code. `padding` > 1 pads
    the differences further (the SPSR release's loss-side operator pads 2: (H+2, W+2) out).
    """

    def __init__(self, *, eps: float = GRADIENT_EPS, padding: int = 1) -> None:
        super().__init__()
        self.eps = eps
        self.extra_padding = padding - 1  # a 3-tap difference with padding p = zero-pad p - 1, then padding 1
        diff = torch.tensor([-1.0, 0.0, 1.0])
        # Buffers, not Parameters: .to() moves them; optimizers and checkpoints never see them.
        self.register_buffer("kx", diff.view(1, 1, 1, 3), persistent=False)
        self.register_buffer("ky", diff.view(1, 1, 3, 1), persistent=False)

    def forward(self, img: Tensor) -> Tensor:
        if self.extra_padding:
            img = F.pad(img, [self.extra_padding] * 4)
        c = img.shape[1]  # channels become conv groups: one call, no Python loop
        kx = self.kx.to(img.dtype).expand(c, 1, 1, 3)
        ky = self.ky.to(img.dtype).expand(c, 1, 3, 1)
        gx = F.conv2d(img, kx, padding=(0, 1), groups=c)
        gy = F.conv2d(img, ky, padding=(1, 0), groups=c)
        return torch.sqrt(gx.square() + gy.square() + self.eps)


def gradient_map(img: Tensor, *, eps: float = GRADIENT_EPS) -> Tensor:
    """Functional M(I) for one-off use (CLI, metrics); modules should hold a GradientMap."""
    return GradientMap(eps=eps).to(img.device)(img)
