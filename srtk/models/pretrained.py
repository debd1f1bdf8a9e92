"""Offline access to torchvision's pretrained ImageNet weights (VGG19 of the perceptual loss, LPIPS trunks).

srtk never downloads: a checkpoint must already lie in the torchvision hub cache (`torch.hub.get_dir()/
checkpoints`, moved with TORCH_HOME), and a missing file is a one-line SrtkError naming the exact path.
"""

from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models import WeightsEnum

from srtk.errors import SrtkError


def hub_checkpoint_path(weights: WeightsEnum) -> Path:
    """Where torchvision's cache keeps `weights`: torch.hub.get_dir()/checkpoints/<file name of its URL>."""
    file_name = Path(urlparse(weights.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def require_hub_checkpoint(weights: WeightsEnum, what: str) -> Path:
    """The cached checkpoint of `weights`, or a one-line SrtkError saying where it must go (no download)."""
    path = hub_checkpoint_path(weights)
    if not path.is_file():
        raise SrtkError(
            f"{what} weights not found: expected {path}; on a networked machine download {weights.url} "
            f"into that path (the torchvision hub cache, moved by TORCH_HOME), or pass allow_random=True "
            f"for randomly initialised features"
        )
    return path
