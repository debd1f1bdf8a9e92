"""LPIPS (Zhang et al. 2018) through the `lpips` package, without network access.

The package ships its linear calibration layers, but builds its AlexNet/VGG backbone from torchvision, whose
ImageNet weights are fetched into the torch hub cache on first use. srtk never downloads: if the backbone file is
not in the cache it stops with an error naming the file and where it must go.
"""

from pathlib import Path

import torch
from torch import Tensor, nn

from srtk.errors import SrtkError

# torchvision's file names for the ImageNet weights lpips builds its backbones from.
BACKBONE_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def backbone_weights_path(net: str) -> Path:
    """Where torchvision looks for `net`'s ImageNet weights ($TORCH_HOME/hub/checkpoints/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net]


def build_lpips(net: str = "alex", *, allow_random_backbone: bool = False) -> nn.Module:
    """An lpips.LPIPS model in eval mode; the backbone must be in the torch hub cache unless allowed random."""
    if net not in BACKBONE_FILES:
        raise SrtkError(f"unknown LPIPS network {net!r}; choose one of: {', '.join(BACKBONE_FILES)}")
    weights = backbone_weights_path(net)
    if not weights.exists() and not allow_random_backbone:
        raise SrtkError(
            f"{weights}: missing ImageNet weights for LPIPS-{net}; copy torchvision's {weights.name} there "
            "(from a machine with network: python -c 'import torchvision; torchvision.models."
            f'{"alexnet" if net == "alex" else "vgg16"}(weights="DEFAULT")\')'
        )
    import lpips  # heavy import, only when LPIPS is asked for

    model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=not weights.exists(), verbose=False)
    return model.eval().requires_grad_(False)


def lpips_distance(model: nn.Module, sr: Tensor, hr: Tensor) -> Tensor:
    """Per-image LPIPS of RGB NCHW [0, 1] images, (N,) float64 (lpips wants [-1, 1])."""
    with torch.no_grad():
        return model(sr * 2 - 1, hr * 2 - 1).flatten().double()
