"""Offline access to torchvision's pretrained ImageNet weights (VGG19 of the perceptual loss and of the structure
loss, ResNet18 of the structure loss, LPIPS trunks).

srtk never downloads: a checkpoint must already lie in the torchvision hub cache (`torch.hub.get_dir()/
checkpoints`, moved with TORCH_HOME), and a missing file is a one-line SrtkError naming the exact path.
"""

from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from srtk.errors import CheckpointError, SrtkError

# torchvision's ImageNet statistics: its classifiers were trained on inputs normalised by them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
            "into that path (the torchvision hub cache, moved by TORCH_HOME), or switch the term off (e.g. "
            "--set losses.perceptual=0); tests only: random features with train --allow-random-perceptual or "
            "evaluate --set allow_random_lpips=true"
        )
    return path


def read_hub_state_dict(path: Path, what: str) -> dict[str, Tensor]:
    """The state dict of a torchvision checkpoint file, loaded weights-only; an unreadable file is one line."""
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated download, wrong file: name it in one line
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: cannot read {what} weights ({reason})") from error
    return state_dict


def load_state_under(module: nn.Module, state_dict: dict[str, Tensor], *, prefix: str, path: Path, what: str) -> None:
    """Fill every tensor of `module` from the keys of `state_dict` under `prefix`; the other keys are ignored
    (a classifier or the deeper layers the caller cut off)."""
    own = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
    wanted = module.state_dict()
    # torchvision's older checkpoints predate BatchNorm's step counter; load_state_dict fills it in (with 0).
    missing = sorted(key for key in set(wanted) - set(own) if not key.endswith("num_batches_tracked"))
    if missing:
        raise CheckpointError(f"{path}: not a torchvision {what} checkpoint (missing {prefix}{missing[0]})")
    module.load_state_dict({key: own[key] for key in wanted if key in own}, strict=True)


def load_hub_weights(module: nn.Module, weights: WeightsEnum, what: str, *, prefix: str = "") -> None:
    """Fill `module` from the cached checkpoint of `weights` (its keys under `prefix`); offline, one-line errors."""
    path = require_hub_checkpoint(weights, what)
    load_state_under(module, read_hub_state_dict(path, what), prefix=prefix, path=path, what=what)


def vgg19_layer_indices(features: nn.Sequential) -> dict[str, int]:
    """Names 'conv{block}_{k}' / 'relu{block}_{k}' -> index in torchvision's VGG19 `features`.

    Derived by walking the layers (a max-pool closes a block) rather than hard-coding indices.
    """
    names: dict[str, int] = {}
    block, conv = 1, 0
    for index, layer in enumerate(features):
        if isinstance(layer, nn.MaxPool2d):
            block, conv = block + 1, 0
        elif isinstance(layer, nn.Conv2d):
            conv += 1
            names[f"conv{block}_{conv}"] = index
        elif isinstance(layer, nn.ReLU):
            names[f"relu{block}_{conv}"] = index
    return names


def load_vgg19_features(features: nn.Sequential, path: Path) -> None:
    """Fill torchvision-layout VGG19 `features` from a torchvision vgg19 checkpoint (classifier ignored)."""
    load_state_under(features, read_hub_state_dict(path, "VGG19"), prefix="features.", path=path, what="VGG19")
