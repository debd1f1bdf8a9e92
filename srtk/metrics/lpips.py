"""LPIPS (Zhang et al. 2018), the learned perceptual distance, through the `lpips` package without network access.

The package ships its linear calibration layers, but builds its AlexNet/VGG16 trunk from torchvision's ImageNet
weights, which must already be in the torch hub cache: srtk never downloads them, and a missing file stops with
an error naming the path (srtk.models.pretrained). The network lives here, with the metric; the LPIPS loss of
ugsr (paper 002 sec. 2.4 eq. 6, srtk.losses.perceptual) wraps it. Convention: RGB, NCHW, float in [0, 1].
"""

import warnings
from typing import Literal, get_args

import lpips
import torch
from torch import Tensor, nn
from torchvision.models import AlexNet_Weights, VGG16_Weights, WeightsEnum

from srtk.errors import ConfigError
from srtk.models.pretrained import require_hub_checkpoint

LPIPSNetwork = Literal["alex", "vgg"]
# The torchvision checkpoints LPIPS builds its trunk from (lpips calls tv.alexnet / tv.vgg16).
LPIPS_TRUNKS: dict[str, WeightsEnum] = {
    "alex": AlexNet_Weights.IMAGENET1K_V1,
    "vgg": VGG16_Weights.IMAGENET1K_V1,
}


class LPIPS(nn.Module):
    """The frozen LPIPS network: `distances(sr, hr)` is the per-image distance, differentiable in `sr`.

    lpips's calibrated linear layers ship inside the package; its trunk comes from the torchvision cache,
    checked here first so that nothing is ever downloaded (`allow_random=True`: a random trunk, for tests).
    """

    def __init__(self, *, network: LPIPSNetwork = "alex", allow_random: bool = False) -> None:
        super().__init__()
        if network not in LPIPS_TRUNKS:
            raise ConfigError(f"unknown LPIPS network {network!r}; choose one of: {', '.join(get_args(LPIPSNetwork))}")
        if not allow_random:
            require_hub_checkpoint(LPIPS_TRUNKS[network], f"LPIPS {network} trunk")
        with warnings.catch_warnings():
            # lpips still calls tv.alexnet(pretrained=...), deprecated since torchvision 0.13 but working.
            warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
            self.network = lpips.LPIPS(net=network, pretrained=True, pnet_rand=allow_random, verbose=False)
        self.network.requires_grad_(False)  # lpips leaves its linear layers trainable
        self.network.eval()

    def train(self, mode: bool = True) -> "LPIPS":
        super().train(mode)
        self.network.eval()  # its linear layers carry dropout: training mode would make the distance noisy
        return self

    def distances(self, sr: Tensor, hr: Tensor) -> Tensor:
        """Per-image LPIPS of RGB NCHW [0, 1] images, (N,)."""
        # LPIPS expects [-1, 1]; srtk images are [0, 1].
        return self.network(2 * sr - 1, 2 * hr - 1).flatten()  # (N, 1, 1, 1) -> (N,)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return self.distances(sr, hr)


def build_lpips(net: str = "alex", *, allow_random_backbone: bool = False) -> LPIPS:
    """A frozen LPIPS network; its trunk must be in the torch hub cache unless allowed random (tests)."""
    return LPIPS(network=net, allow_random=allow_random_backbone)  # type: ignore[arg-type]


def lpips_distance(model: LPIPS, sr: Tensor, hr: Tensor) -> Tensor:
    """Per-image LPIPS of RGB NCHW [0, 1] images, (N,) float64: the metric of `srtk evaluate --metrics lpips`."""
    with torch.no_grad():
        return model.distances(sr, hr).double()
