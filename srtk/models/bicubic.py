"""The bicubic baseline as a model: MATLAB-compatible bicubic upscaling of the LR input."""

from torch import Tensor, nn

from srtk.data.resize import imresize


class Bicubic(nn.Module):
    """Upscale by `scale` with MATLAB imresize 'bicubic' (the papers' "Bicubic" rows)."""

    def __init__(self, *, scale: int = 4) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, lr: Tensor) -> Tensor:
        return imresize(lr, self.scale)
