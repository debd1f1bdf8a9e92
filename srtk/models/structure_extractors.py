"""The structure extractor F of the structure loss (paper 000 sec. 4.3 eqs. 14-15, Appendix C).

"nse": a neural structure extractor pre-trained by `srtk pretrain-nse` (SPSR-P: contrastive prediction, SPSR-J:
jigsaw puzzles), or a randomly initialised one (SPSR-R). "vgg19" / "resnet18": ImageNet classifiers in its place
(SPSR-VGG, SPSR-ResNet): VGG19 "features of the 4th convolution after the 4th max-pooling" (ESRGAN's conv5_4,
before its ReLU, as the perceptual loss) and ResNet18 "Conv4_2", the output of the second block of the conv4_x
stage (torchvision's layer3[1]); both have stride 16, "the same spatial resolutions" (Appendix C).
Whatever the kind: frozen, in eval mode, RGB NCHW [0, 1] in, (N, out_channels, H/stride, W/stride) out, with
`out_channels` and `stride` attributes. Map sizes round as the networks do: the NSE's and ResNet's strided
convs round up, VGG's max-pools down; on patches that are multiples of 16 (the paper's 128) all are H/stride.
"""

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, VGG19_Weights, resnet18, vgg

from srtk.errors import CheckpointError, ConfigError
from srtk.models.checkpoint import load_srtk_checkpoint
from srtk.models.nse import NeuralStructureExtractor, PretextModel
from srtk.models.pretrained import IMAGENET_MEAN, IMAGENET_STD, load_hub_weights, vgg19_layer_indices
from srtk.models.registry import build_model

VGG_LAYER = "conv5_4"  # Appendix C follows ESRGAN: the 4th conv after the 4th max-pooling, before activation
RESNET_STAGE = "layer3"  # ResNet "Conv4_2": conv4_x is torchvision's layer3 (conv1, then conv2_x = layer1)
RESNET_BLOCKS = 2  # ... and its 2nd block ("_2"): layer3[1], whose output is the stage's in ResNet18
TASK_DESCRIPTIONS = {"contrastive": "contrastive prediction", "jigsaw": "jigsaw puzzles"}  # sec. 4.2
NSE_ARCHITECTURES = ("nse-pretext", "nse")  # cards a --nse checkpoint may carry


class StructureExtractor(nn.Module):
    """A frozen F: RGB [0, 1] NCHW -> (N, out_channels, H/stride, W/stride), optionally ImageNet-normalised first.

    It stays in eval mode whatever its owner does (`train()` is overridden), and none of its parameters train:
    gradients reach the input (the SR image of eq. 14-15) only.
    """

    def __init__(self, network: nn.Module, *, out_channels: int, stride: int, imagenet_input: bool) -> None:
        super().__init__()
        self.network = network
        self.out_channels = out_channels
        self.stride = stride
        self.imagenet_input = imagenet_input
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "StructureExtractor":
        return super().train(False)  # a fixed measuring stick: batch norms keep their ImageNet statistics

    def forward(self, img: Tensor) -> Tensor:
        if self.imagenet_input:  # the classifiers were trained on normalised inputs
            img = (img - self.mean.to(img.dtype)) / self.std.to(img.dtype)
        return self.network(img)


def vgg19_extractor(*, allow_random: bool = False) -> StructureExtractor:
    """VGG19 up to conv5_4 (pre-activation): 512 channels, stride 16 (SPSR-VGG, Appendix C)."""
    features = vgg.make_layers(vgg.cfgs["E"], batch_norm=False)  # torchvision's vgg19().features, same keys
    trunk = features[: vgg19_layer_indices(features)[VGG_LAYER] + 1]
    if not allow_random:
        load_hub_weights(trunk, VGG19_Weights.IMAGENET1K_V1, "VGG19", prefix="features.")
    stride = math.prod(_stride_of(layer) for layer in trunk if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)))
    last_conv = trunk[-1]  # conv5_4 itself: the tap is before its ReLU
    assert isinstance(last_conv, nn.Conv2d)
    return StructureExtractor(trunk, out_channels=last_conv.out_channels, stride=stride, imagenet_input=True)


class _ResNetTrunk(nn.Module):
    """torchvision's ResNet18 up to the tapped block, under torchvision's names (its checkpoint keys fit)."""

    def __init__(self) -> None:
        super().__init__()
        full = resnet18(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = full.conv1, full.bn1, full.relu, full.maxpool
        stages = ("layer1", "layer2", "layer3", "layer4")
        kept = stages[: stages.index(RESNET_STAGE) + 1]
        for name in kept:
            setattr(self, name, getattr(full, name))
        self.stages = kept
        del getattr(self, RESNET_STAGE)[RESNET_BLOCKS:]  # blocks after the tap (none in ResNet18's 2-block stage)

    def forward(self, img: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(img))))  # (N, 64, H/4, W/4)
        for name in self.stages:
            x = getattr(self, name)(x)
        return x  # layer3[1]: (N, 256, H/16, W/16)

    def stride(self) -> int:
        stride = _stride_of(self.conv1) * _stride_of(self.maxpool)
        for name in self.stages:
            for block in getattr(self, name):
                stride *= block.stride  # a BasicBlock downsamples by its first conv's stride
        return stride


def resnet18_extractor(*, allow_random: bool = False) -> StructureExtractor:
    """ResNet18 up to "Conv4_2" (layer3[1], after its ReLU): 256 channels, stride 16 (SPSR-ResNet, Appendix C)."""
    trunk = _ResNetTrunk()
    if not allow_random:
        load_hub_weights(trunk, ResNet18_Weights.IMAGENET1K_V1, "ResNet18")
    out_channels = getattr(trunk, RESNET_STAGE)[-1].conv2.out_channels
    return StructureExtractor(trunk, out_channels=out_channels, stride=trunk.stride(), imagenet_input=True)


def _stride_of(layer: nn.Module) -> int:
    stride = layer.stride  # type: ignore[union-attr]
    return int(stride[0] if isinstance(stride, tuple) else stride)


IMAGENET_EXTRACTORS: dict[str, Callable[..., StructureExtractor]] = {
    "vgg19": vgg19_extractor,  # SPSR-VGG (Appendix C)
    "resnet18": resnet18_extractor,  # SPSR-ResNet (Appendix C)
}
KINDS = ("nse", *IMAGENET_EXTRACTORS)


def _frozen_nse(network: NeuralStructureExtractor) -> NeuralStructureExtractor:
    """The NSE itself, frozen: its state dict stays the NSE's (a pretext run starts its extractor from it)."""
    network.requires_grad_(False)
    return network.eval()  # no batch norm or dropout: training mode would change nothing


def _described(task: str) -> str:
    return TASK_DESCRIPTIONS.get(task, task)


def _pretrain_hint(task: str) -> str:
    return f"make one with: srtk pretrain-nse --task {task} --out runs/nse"


def load_nse(path: Path, *, task: str | None = None) -> NeuralStructureExtractor:
    """The NSE of a `srtk pretrain-nse` checkpoint (an "nse-pretext" card, or a bare "nse" one).

    With `task`, a pretext model trained by another task is refused, saying which task it was; a bare
    "nse" card records no task and is taken as it is.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: no such NSE checkpoint ({_pretrain_hint(task or 'contrastive')})")
    if path.suffix not in (".safetensors", ".json"):
        raise CheckpointError(f"{path}: an NSE checkpoint is the .safetensors file written by srtk pretrain-nse")
    network, card = load_srtk_checkpoint(path, build_model)
    if card.architecture not in NSE_ARCHITECTURES:
        raise CheckpointError(
            f"{path}: holds a {card.architecture}, not a neural structure extractor ({', '.join(NSE_ARCHITECTURES)})"
        )
    if isinstance(network, PretextModel):
        if task is not None and network.task != task:
            raise ConfigError(
                f"{path} was pre-trained by {network.task} ({_described(network.task)}), but this method "
                f"(structure.nse_task={task}) needs {_described(task)}: use the method of {network.task} NSEs "
                f"(srtk train --help), or {_pretrain_hint(task)}"
            )
        network = network.extractor
    if not isinstance(network, NeuralStructureExtractor):
        raise CheckpointError(f"{path}: {card.architecture} did not build a neural structure extractor")
    return network


def build_structure_extractor(
    kind: str,
    *,
    nse: Path | None = None,
    random_nse: bool = False,
    nse_task: str | None = None,
    allow_random: bool = False,
) -> nn.Module:
    """F of the structure loss: frozen, eval mode, RGB [0, 1] NCHW in; `.out_channels` and `.stride` size D_SF.

    For kind "nse" it is the NeuralStructureExtractor itself (its state dict is an NSE's); for the ImageNet
    kinds a StructureExtractor around the classifier's trunk.

    kind "nse": the extractor of checkpoint `nse` (of task `nse_task` when given), or with `random_nse` a freshly
    initialised one drawn from the global torch RNG (SPSR-R). kind "vgg19" / "resnet18": ImageNet weights from
    the torchvision hub cache, never downloaded; `allow_random` (tests) builds them randomly initialised.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown structure extractor {kind!r}; choose one of: {', '.join(KINDS)}")
    if kind != "nse":
        if nse is not None or random_nse:
            raise ConfigError(f"structure extractor {kind!r} takes no NSE: drop --nse / random_nse, or use kind nse")
        return IMAGENET_EXTRACTORS[kind](allow_random=allow_random)
    if random_nse:
        if nse is not None:
            raise ConfigError(f"give either --nse {nse} or random_nse (SPSR-R), not both")
        return _frozen_nse(NeuralStructureExtractor())  # SPSR-R: "a randomly initialized NSE" (Appendix C)
    if nse is None:
        task = nse_task or "contrastive"
        raise ConfigError(
            f"the structure loss needs an NSE pre-trained by {_described(task)}: give --nse "
            f"CHECKPOINT ({_pretrain_hint(task)})"
        )
    return _frozen_nse(load_nse(nse, task=nse_task))
