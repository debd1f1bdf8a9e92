"""Model registry: name -> builder for every network of srtk, and load_model() for names and checkpoints."""

import difflib
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from srtk.errors import CheckpointError, SrtkError, SrtkWarning
from srtk.models.backbone import SRBackbone
from srtk.models.bicubic import Bicubic
from srtk.models.bundled import bundled_models
from srtk.models.checkpoint import (
    OFFICIAL_LAYOUTS,
    OFFICIAL_SUFFIXES,
    ModelCard,
    convert_official_checkpoint,
    load_srtk_checkpoint,
    read_card,
    save_model,
)
from srtk.models.discriminators import SRGANDiscriminator, UNetDiscriminator, VGGDiscriminator
from srtk.models.edsr import EDSR
from srtk.models.embedding import EmbeddingNetwork
from srtk.models.exported import load_onnx_model
from srtk.models.gpsr import GPSR
from srtk.models.han import HAN
from srtk.models.nlsn import NLSN
from srtk.models.nse import NeuralStructureExtractor, PretextModel
from srtk.models.rcan import RCAN
from srtk.models.rrdbnet import RRDBNet
from srtk.models.spsr import SPSR, spsr_rrdbnet
from srtk.models.srresnet import SRResNet
from srtk.models.ugsr import UGSR
from srtk.runtime import sr_image


def spsr_around(
    *,
    backbone: str = "rrdbnet",
    backbone_options: dict[str, Any] | None = None,
    scale: int = 4,
    num_taps: int = 4,  # paper 000 sec. 3.2: four tapped features
    growth_channels: int = 32,
) -> SPSR:
    """The SPSR generator around any registry backbone ("our methods are model-agnostic", paper 000 sec. 1).

    Takes names, not modules, so that a model card can rebuild it; RRDBNet gives exactly `spsr` (the paper's).
    """
    options = {"scale": scale, **(backbone_options or {})}
    if backbone == "rrdbnet":
        # The paper's generator: one growth rate for the RRDBs of both branches (backbone options win).
        return spsr_rrdbnet(**{"num_taps": num_taps, "growth_channels": growth_channels, **options})
    network = build_model(backbone, **options)
    if not isinstance(network, SRBackbone):
        raise SrtkError(f"SPSR needs an SR backbone with feature taps; {backbone!r} is not one")
    return SPSR(backbone=network, num_taps=num_taps, growth_channels=growth_channels)


# Super-resolution networks (generators and backbones): LR RGB [0, 1] in, SR out.
MODELS: dict[str, Callable[..., nn.Module]] = {
    "bicubic": Bicubic,
    "rrdbnet": RRDBNet,  # ESRGAN generator (23 RRDB, 64 features, growth 32)
    "srresnet": SRResNet,  # BN-free, as in the ESRGAN framework SPSR trains in (paper 000 Appendix D)
    "srresnet-bn": partial(SRResNet, batch_norm=True),  # SRGAN generator (Ledig et al. 2017, Fig. 4)
    "edsr": EDSR,  # class defaults: the baseline; converted checkpoints give every size explicitly
    "edsr-baseline": partial(EDSR, num_blocks=16, num_features=64, res_scale=1.0),
    "edsr-large": partial(EDSR, num_blocks=32, num_features=256, res_scale=0.1),
    "rcan": RCAN,
    "han": HAN,
    "nlsn": NLSN,
    "spsr": spsr_rrdbnet,  # SPSR generator around RRDBNet (paper 000 sec. 3.2)
    "spsr-around": spsr_around,  # SPSR around any backbone named by `backbone`
    "ugsr": UGSR,
    "gpsr": GPSR,
    "gpsr-x8": partial(GPSR, scale=8),  # alias: GPSR's widths follow `scale` (paper 003 Table 4)
}
# Critics, extractors and embeddings: used by training methods, not for upscaling.
AUXILIARY: dict[str, Callable[..., nn.Module]] = {
    "vgg-128": VGGDiscriminator,  # ESRGAN/SPSR image discriminator D_I (and D_GM on gradient maps)
    "spsr-structure": partial(VGGDiscriminator, in_channels=32, input_size=32, num_stages=3),  # D_SF
    "unet-sn": UNetDiscriminator,  # paper 002
    "srgan-critic": SRGANDiscriminator,  # SRGAN discriminator on 96x96 HR patches (Ledig et al. 2017, Fig. 4)
    "nse": NeuralStructureExtractor,  # paper 000 sec. 4.1
    "nse-pretext": PretextModel,  # F with its pretext head (sec. 4.2): `srtk pretrain-nse`; card config: task, sampling
    "pcl-embedding": EmbeddingNetwork,  # paper 004 sec. III-C
}
# Models that need no weights: `--model NAME` works without a checkpoint.
PARAMETER_FREE = frozenset({"bicubic"})


def build_model(name: str, **overrides: Any) -> nn.Module:
    """A freshly initialised network of the registry (SR models and auxiliary networks)."""
    builders = {**MODELS, **AUXILIARY}
    if name not in builders:
        raise SrtkError(f"unknown model {name!r}; choose one of: {', '.join(sorted(builders))}")
    try:
        return builders[name](**overrides)
    except TypeError as error:
        raise SrtkError(f"model {name!r}: {error}") from None


class SRImage(nn.Module):
    """Inference view of a generator: forward returns the SR image even when the network has several outputs."""

    def __init__(self, network: nn.Module, card: ModelCard) -> None:
        super().__init__()
        self.network = network
        self.card = card
        self.scale = card.scale

    def forward(self, lr: Tensor) -> Tensor:
        return sr_image(self.network(lr))


def load_official(path: Path) -> tuple[nn.Module, ModelCard]:
    """(network with the converted weights, card) of an official checkpoint file: an SR model or a critic."""
    layout, config, state = convert_official_checkpoint(path)
    network = build_model(layout.architecture, **config)
    network.load_state_dict(state, strict=True)
    card = ModelCard(
        architecture=layout.architecture,
        config=config,
        scale=int(getattr(network, "scale", 1)),  # critics and embeddings do not upscale
        source=f"converted from {path.name} ({layout.name})",
        notes=f"a {layout.role}: for training, not for upscaling" if layout.architecture not in MODELS else "",
    )
    return network, card


def convert_official_to_srtk(source: Path, target: Path) -> ModelCard:
    """`srtk convert`: an official checkpoint file rewritten in srtk's format; returns the written card."""
    network, card = load_official(Path(source))
    save_model(Path(target), network, card)
    return card


def load_network_with_card(path: Path) -> tuple[nn.Module, ModelCard]:
    """(network with its weights, card) of any checkpoint file: an SR model, a critic, an extractor or an
    embedding, in srtk's format (.safetensors + .json card) or an official .pth. Training reads its auxiliary
    networks this way; `load_model_with_card` narrows it to upscalers."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix in OFFICIAL_SUFFIXES:
        return load_official(path)
    if path.suffix in (".safetensors", ".json"):
        return load_srtk_checkpoint(path, build_model)
    raise CheckpointError(f"{path}: unknown checkpoint type; srtk reads .safetensors (+ .json card) and .pth")


def check_model_reference(name: str) -> Path:
    """The checkpoint file `name` refers to (a weight-free name returns its own name as a Path); a
    CheckpointError that says what exists when it refers to nothing: no such file, or an unknown name."""
    if name in PARAMETER_FREE:
        return Path(name)
    path = Path(name).expanduser()
    if path.is_file():
        return path
    bundled = bundled_models()
    if name in bundled:
        return bundled[name]
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; give the checkpoint file (e.g. {path / 'final.safetensors'})")
    if path.suffix or len(path.parts) > 1:  # written as a path: the file is what is missing
        raise CheckpointError(f"{path}: no such checkpoint file")
    usable = sorted(PARAMETER_FREE) + list(bundled)
    if name in MODELS or name in AUXILIARY:
        raise CheckpointError(
            f"{name}: an architecture without trained weights; pass a checkpoint of it (e.g. the "
            f"final.safetensors of srtk train), a bundled model or a weight-free one ({', '.join(usable)})"
        )
    close = difflib.get_close_matches(name, [*usable, *MODELS], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CheckpointError(
        f"{name}: no such checkpoint file, and not a model name{hint}; srtk's own models: {', '.join(usable)} "
        "(srtk models lists them)"
    )


def native_scale(name: str) -> int | None:
    """The factor a checkpoint upscales by (the default --scale for it); None for weight-free models (any)."""
    path = check_model_reference(name)
    if name in PARAMETER_FREE:
        return None
    if path.suffix in (".safetensors", ".json"):
        return read_card(path.with_suffix(".safetensors")).scale  # the card alone: no weights read
    return int(load_model_with_card(path)[0].scale)


def load_model_with_card(name_or_path: str | Path, *, scale: int = 4) -> tuple[nn.Module, ModelCard]:
    """(eval-mode SR model returning the SR image, its card) from a weight-free name or a checkpoint file."""
    name = str(name_or_path)
    if name in PARAMETER_FREE:
        card = ModelCard(architecture=name, config={"scale": scale}, scale=scale, source="parameter-free")
        return build_model(name, scale=scale).eval(), card
    path = check_model_reference(name)
    if path.suffix == ".onnx":  # an `srtk export` file: onnxruntime runs it, its metadata is its card
        exported = load_onnx_model(path)
        source = f"exported to ONNX: {path.name}"
        return exported, ModelCard(architecture=exported.architecture, config={}, scale=exported.scale, source=source)
    network, card = load_network_with_card(path)
    if card.training.get("preview"):  # a bundled model below its bar: say so wherever it is used
        warnings.warn(f"{name}: {card.training['preview']} (MODEL_ZOO.md)", SrtkWarning, stacklevel=2)
    if card.architecture not in MODELS:  # a critic or an embedding scores images: it cannot upscale one
        roles = {layout.architecture: layout.role for layout in OFFICIAL_LAYOUTS}
        role = roles.get(card.architecture, "auxiliary network")
        raise CheckpointError(
            f"{path}: {card.architecture} is a {role}, not an SR model; load_model returns upscalers only "
            "(srtk convert writes it for training)"
        )
    return SRImage(network, card).eval(), card


def load_model(name_or_path: str | Path, *, scale: int = 4) -> nn.Module:
    """A ready-to-run SR model in eval mode: a weight-free registry name, a checkpoint (srtk or official), or an
    ONNX file written by `srtk export` (run by onnxruntime).

    Its forward takes RGB, NCHW, [0, 1] LR and returns the SR image on the same scale; `model.scale` is its factor.
    """
    return load_model_with_card(name_or_path, scale=scale)[0]
