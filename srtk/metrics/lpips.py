"""LPIPS (Zhang et al. 2018) as an evaluation metric, through the `lpips` package, without network access.

The package ships its linear calibration layers, but builds its AlexNet/VGG trunk from torchvision's ImageNet
weights, which must already be in the torch hub cache: srtk never downloads them, and a missing file stops with
an error naming the path (see srtk.losses.perceptual, which the metric shares with the LPIPS loss of paper 002).
"""

import torch
from torch import Tensor

from srtk.losses.perceptual import LPIPSLoss


def build_lpips(net: str = "alex", *, allow_random_backbone: bool = False) -> LPIPSLoss:
    """A frozen LPIPS network; its trunk must be in the torch hub cache unless allowed random (tests)."""
    return LPIPSLoss(network=net, allow_random=allow_random_backbone)  # type: ignore[arg-type]


def lpips_distance(model: LPIPSLoss, sr: Tensor, hr: Tensor) -> Tensor:
    """Per-image LPIPS of RGB NCHW [0, 1] images, (N,) float64."""
    with torch.no_grad():
        return model.distances(sr, hr).double()
