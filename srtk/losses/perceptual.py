"""Perceptual losses: VGG19 feature distance (SPSR paper 000 sec. 3.3 eq. 4, following ESRGAN) and LPIPS
(ugsr paper 002 sec. 2.4 eq. 6, AlexNet trunk; the network is the metric's, srtk.metrics.lpips).

Both networks are frozen ImageNet classifiers that srtk never downloads: their weights must already lie in
the torchvision hub cache (`torch.hub.get_dir()/checkpoints`, moved with TORCH_HOME). A missing file is a
one-line SrtkError naming the exact path; `allow_random=True` builds randomly initialised trunks instead
(tests, or the "random network" ablations). Convention: SR and HR are RGB, NCHW, float in [0, 1].
"""

import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import get_args

import torch
from torch import Tensor, nn
from torchvision.models import VGG19_Weights, vgg

from srtk.errors import ConfigError
from srtk.losses.pixel import PixelCriterion, pixel_distance
from srtk.metrics.lpips import LPIPS, LPIPSNetwork
from srtk.models.pretrained import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_vgg19_features,
    require_hub_checkpoint,
    vgg19_layer_indices,
)

# SPSR trains in ESRGAN's framework (paper 000 sec. 5.1), whose perceptual loss compares VGG19 conv5_4 (the 4th
# convolution after the 4th max-pooling) *before* the ReLU: activated deep features are sparse. Paper 000 itself
# never names the layer (sec. 3.3: "the i-th layer output"); conv5_4 is ESRGAN's choice.
DEFAULT_VGG_LAYERS: tuple[tuple[str, float], ...] = (("conv5_4", 1.0),)

# SRGAN (Ledig et al., CVPR 2017) sec. 2.2.1: phi_{5,4}, "the feature map obtained by the 4th convolution (after
# activation) before the 5th maxpooling layer" (relu5_4), compared by their squared difference (eq. 5).
# Sec. 3.2 rescales "the VGG loss by 1/12.75 ... equivalent to multiplying Eq. 5 with a rescaling factor of
# ~0.006". reading: 1/12.75 scales the feature maps, so the squared difference takes 1/12.75^2 = 0.00615, the
# published ~0.006 (1/12.75 itself would be 0.078).
SRGAN_VGG_FEATURE_SCALE = 1 / 12.75
SRGAN_VGG_LAYERS: tuple[tuple[str, float], ...] = (("relu5_4", SRGAN_VGG_FEATURE_SCALE**2),)
# reading: eq. 5 averages the squared difference over the W x H positions of phi_{5,4} without saying what
# happens to its 512 channels; "l2" averages over them too, like every srtk distance, with the weight as printed.
SRGAN_VGG_CRITERION: PixelCriterion = "l2"

_LAYER_NAME = re.compile(r"^(conv|relu)(\d+)_(\d+)$")


def frozen_vgg19_trunk(layer_names: Sequence[str], *, allow_random: bool) -> tuple[nn.Sequential, tuple[int, ...]]:
    """(torchvision's VGG19 `features` cut after the deepest of `layer_names`, the index of each named layer).

    ImageNet weights come from the hub cache (one-line error when absent) unless `allow_random`; the trunk is
    frozen and in eval mode, its ReLUs not in place. Shared by the perceptual loss and PCL's VGG embedding.
    """
    # torchvision's vgg19() `features` exactly (same indices, same checkpoint keys), without building
    # the 120M-parameter classifier no loss uses.
    if not layer_names:
        raise ConfigError("a VGG19 trunk needs at least one layer, e.g. relu1_1")
    features = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)
    names = vgg19_layer_indices(features)
    unknown = [name for name in layer_names if name not in names]
    if unknown:
        raise ConfigError(f"unknown VGG19 layer(s) {', '.join(unknown)}; choose from: {', '.join(names)}")
    indices = tuple(names[name] for name in layer_names)
    if not allow_random:
        load_vgg19_features(features, require_hub_checkpoint(VGG19_Weights.IMAGENET1K_V1, "VGG19"))
    trunk = features[: max(indices) + 1]  # keep only what the deepest requested layer needs
    for layer in trunk:
        if isinstance(layer, nn.ReLU):
            # torchvision's ReLUs are in-place: they would overwrite a tapped pre-activation output.
            layer.inplace = False
    trunk.requires_grad_(False)  # a fixed measuring stick, never trained
    trunk.eval()
    return trunk, indices


class VGGPerceptualLoss(nn.Module):
    """L_per = sum_i w_i E d(phi_i(SR), phi_i(HR)) on VGG19 features: SPSR eq. 4 (ESRGAN) or SRGAN's VGG loss.

    `layers` pairs a layer name ('conv5_4' = before activation, 'relu5_4' = after) with its weight; `criterion`
    is d: "l1" (the mean absolute difference, ESRGAN / SPSR) or "l2" (the mean squared difference, SRGAN
    eq. 5), each averaged over batch, channels and positions. Named settings: VGG_CONTENT_LOSSES.
    Gradients flow into `sr` only: `hr` is the target.
    """

    def __init__(
        self,
        *,
        layers: Sequence[tuple[str, float]] = DEFAULT_VGG_LAYERS,  # SPSR sec. 5.1 follows ESRGAN: conv5_4
        criterion: PixelCriterion = "l1",  # eq. 4 writes ||.||_1 (the text's "Euclidean" is ESRGAN's L1)
        allow_random: bool = False,
    ) -> None:
        super().__init__()
        if not layers:
            raise ConfigError("VGG perceptual loss needs at least one layer, e.g. conv5_4")
        if criterion not in get_args(PixelCriterion):
            raise ConfigError(f"unknown criterion {criterion!r}; choose one of: {', '.join(get_args(PixelCriterion))}")
        self.layer_names = tuple(name for name, _ in layers)
        self.layer_weights = tuple(float(weight) for _, weight in layers)
        self.criterion: PixelCriterion = criterion
        self.features, self.layer_indices = frozen_vgg19_trunk(self.layer_names, allow_random=allow_random)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        super().train(mode)
        self.features.eval()  # the trunk stays in inference mode whatever the method does
        return self

    def extract(self, img: Tensor) -> list[Tensor]:
        """VGG19 features of an RGB [0, 1] image at the configured layers, in `layers` order."""
        x = (img - self.mean.to(img.dtype)) / self.std.to(img.dtype)
        wanted = set(self.layer_indices)
        taken: dict[int, Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                taken[index] = x
        return [taken[index] for index in self.layer_indices]

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        with torch.no_grad():  # the target needs no graph: halves the activation memory
            hr_feats = self.extract(hr)
        sr_feats = self.extract(sr)
        terms = [
            weight * pixel_distance(sr_feat, hr_feat, criterion=self.criterion)
            for weight, sr_feat, hr_feat in zip(self.layer_weights, sr_feats, hr_feats, strict=True)
        ]
        return torch.stack(terms).sum()


# The VGG content losses a preset names (LossConfig.perceptual_kind): one class, layer and criterion settings.
VGG_CONTENT_LOSSES: dict[str, Callable[..., VGGPerceptualLoss]] = {
    "vgg": VGGPerceptualLoss,  # ESRGAN / SPSR (paper 000 eq. 4): L1 on conv5_4, weight 1
    "vgg-srgan": partial(VGGPerceptualLoss, layers=SRGAN_VGG_LAYERS, criterion=SRGAN_VGG_CRITERION),
}


class LPIPSLoss(nn.Module):
    """L_per = LPIPS(SR, HR) averaged over the batch (ugsr eq. 6, AlexNet trunk).

    The frozen network is the LPIPS metric's (srtk.metrics.lpips.LPIPS), so the loss trains towards exactly
    what `srtk evaluate --metrics lpips` measures. Gradients flow into `sr` only.
    """

    def __init__(self, *, network: LPIPSNetwork = "alex", allow_random: bool = False) -> None:
        super().__init__()  # "alex": ugsr sec. 2.4, "LPIPS trained on the AlexNet network"
        self.lpips = LPIPS(network=network, allow_random=allow_random)

    def forward(self, sr: Tensor, hr: Tensor) -> Tensor:
        return self.lpips.distances(sr, hr).mean()
