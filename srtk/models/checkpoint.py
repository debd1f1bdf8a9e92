"""srtk's model checkpoint: weights in safetensors beside a JSON model card, and loading of official checkpoints.

A checkpoint `NAME.safetensors` holds only tensors (loading never executes pickled code); `NAME.json`, its model
card, says how to rebuild the network (`architecture`: a registry name, `config`: its keyword arguments) and what
it is (scale, method, training data, measured metrics, provenance). Official `.pth` files of the SPSR authors,
ESRGAN/BasicSR and EDSR-PyTorch (EDSR, RCAN) are recognised by their keys and converted in memory or by
`srtk convert`; `torch.load(weights_only=True)` refuses anything but tensors and plain containers.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from srtk.data.io import atomic_path, write_json
from srtk.errors import CheckpointError
from srtk.models import edsr, rcan, rrdbnet, spsr
from srtk.version import __version__

CARD_FORMAT = "srtk-model/1"
OFFICIAL_SUFFIXES = (".pth", ".pt", ".ckpt")


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint is and how to rebuild it."""

    architecture: str  # registry name
    config: dict[str, Any]  # keyword arguments of the registry builder
    scale: int
    method: str | None = None  # training method (psnr, spsr-g, ...), None for converted weights
    training_data: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # provenance: "trained by srtk", "converted from X (layout)"
    notes: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"format": CARD_FORMAT, **asdict(self), "srtk_version": __version__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Path) -> "ModelCard":
        if data.get("format") != CARD_FORMAT:
            raise CheckpointError(f"{path}: not an srtk model card (format {data.get('format')!r})")
        known = {f for f in cls.__dataclass_fields__}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as error:
            raise CheckpointError(f"{path}: incomplete model card ({error})") from None


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def save_model(path: Path, model: nn.Module, card: ModelCard) -> Path:
    """Write `path` (.safetensors) and its card atomically; returns the weights path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: srtk checkpoints are .safetensors files")
    # Cloned, contiguous CPU tensors: safetensors refuses shared or strided storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": CARD_FORMAT, "architecture": card.architecture})
    write_json(card_path(path), card.as_dict())
    return path


def read_card(path: Path) -> ModelCard:
    card_file = card_path(path)
    if not card_file.exists():
        raise CheckpointError(f"{path}: model card {card_file.name} is missing beside it")
    try:
        data = json.loads(card_file.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{card_file}: corrupt model card ({error})") from None
    return ModelCard.from_dict(data, card_file)


def load_srtk_checkpoint(path: Path, build: Callable[..., nn.Module]) -> tuple[nn.Module, ModelCard]:
    """(model with weights, card) of an srtk checkpoint; `build(name, **config)` makes the network."""
    weights = path.with_suffix(".safetensors") if path.suffix == ".json" else path
    card = read_card(weights)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{weights}: unreadable weights ({error})") from None
    model = build(card.architecture, **card.config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).splitlines()[0] if str(error) else "mismatch"
        raise CheckpointError(f"{weights}: weights do not fit {card.architecture} ({first})") from None
    return model, card


# Official layouts in detection order (SPSR before ESRGAN: both use the sequential `model.N` keys).
# Each: (layout name, srtk architecture, detector, converter).
OFFICIAL_LAYOUTS: tuple[tuple[str, str, Callable[..., bool], Callable[..., Any]], ...] = (
    ("SPSR (Maclory/SPSR SPSRNet)", "spsr", spsr.is_official, spsr.convert_official),
    ("ESRGAN / BasicSR RRDBNet", "rrdbnet", rrdbnet.is_official, rrdbnet.convert_official),
    ("EDSR-PyTorch EDSR", "edsr", edsr.is_official, edsr.convert_official),
    ("EDSR-PyTorch RCAN", "rcan", rcan.is_official, rcan.convert_official),
)


def read_official_state_dict(path: Path) -> dict[str, Tensor]:
    """A .pth state dict loaded without executing pickled code, with training wrappers removed."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except Exception as error:  # noqa: BLE001 - unpickling raises many kinds; all mean "not loadable safely"
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({message})") from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    return rrdbnet.unwrap_state_dict(raw)


def convert_official_checkpoint(path: Path) -> tuple[str, dict[str, Any], dict[str, Tensor], str]:
    """(architecture, config, srtk state dict, layout name) of an official checkpoint file."""
    state = read_official_state_dict(path)
    for layout, architecture, detect, convert in OFFICIAL_LAYOUTS:
        if detect(state):
            try:
                config, converted = convert(state)
            except CheckpointError as error:
                raise CheckpointError(f"{path}: {error}") from None
            return architecture, config, converted, layout
    names = ", ".join(layout for layout, *_ in OFFICIAL_LAYOUTS)
    sample = ", ".join(list(state)[:3])
    raise CheckpointError(f"{path}: unknown checkpoint layout (keys {sample}, ...); srtk reads: {names}")
