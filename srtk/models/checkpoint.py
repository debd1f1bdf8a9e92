"""srtk's model checkpoint: weights in safetensors beside a JSON model card, and loading of official checkpoints.

A checkpoint `NAME.safetensors` holds only tensors (loading never executes pickled code); `NAME.json`, its model
card, says how to rebuild the network (`architecture`: a registry name, `config`: its keyword arguments) and what
it is (scale, method, training data, measured metrics, provenance). Official `.pth` files of the SPSR authors,
ESRGAN/BasicSR and EDSR-PyTorch (EDSR, RCAN) generators, and of the ESRGAN/BasicSR VGG critic and PCL's embedding
network, are recognised by their keys (`OFFICIAL_LAYOUTS`, one key map per architecture, see official.py) and
converted in memory or by `srtk convert`; `torch.load(weights_only=True)` refuses anything but tensors and plain
containers.
"""

import json
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from srtk.data.io import atomic_path, write_json
from srtk.errors import CheckpointError
from srtk.models import discriminators, edsr, embedding, rcan, rrdbnet, spsr
from srtk.models.official import KeyMap, canonicalize, listed
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
    losses: dict[str, float] = field(default_factory=dict)  # the weighted loss terms it was trained with
    source: str = ""  # provenance: "trained by srtk", "converted from X (layout)"
    notes: str = ""
    training: dict[str, Any] = field(default_factory=dict)  # bundled models: iterations, hardware, wall time, command

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


def save_model(path: Path, model: nn.Module, card: ModelCard, *, dtype: torch.dtype | None = None) -> Path:
    """Write `path` (.safetensors) and its card atomically; returns the weights path.

    `dtype` stores the floating-point tensors in another precision (the bundled models: float16, half the size);
    loading casts them back to the network's."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: srtk checkpoints are .safetensors files")
    # Cloned, contiguous CPU tensors: safetensors refuses shared or strided storage.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
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


Converter = Callable[[Mapping[str, Tensor]], tuple[dict[str, Any], dict[str, Tensor]]]


@dataclass(frozen=True)
class OfficialLayout:
    """An official checkpoint layout srtk reads: how to recognise it and what srtk network it becomes."""

    name: str
    architecture: str  # registry name of the srtk network
    detect: Callable[[Mapping[str, Tensor]], bool]
    key_map: Callable[[Mapping[str, Tensor]], KeyMap]  # also scores checkpoints no detector recognises
    convert: Converter  # canonical state dict -> (registry config, srtk state dict)
    role: str = "SR model"  # anything else is converted for training and refused by load_model


class OfficialCheckpoint(NamedTuple):
    """An official checkpoint converted in memory."""

    layout: OfficialLayout
    config: dict[str, Any]  # keyword arguments of the registry builder, inferred from the shapes
    state: dict[str, Tensor]  # in srtk's names, ready for load_state_dict(strict=True)


# In detection order: SPSR before ESRGAN (both use the sequential `model.N` keys), the VGG critic before PCL's E_D
# (both name their convs `features.N.0`).
OFFICIAL_LAYOUTS: tuple[OfficialLayout, ...] = (
    OfficialLayout(
        "SPSR (Maclory/SPSR SPSRNet)", "spsr", spsr.is_official, spsr.official_key_map, spsr.convert_official
    ),
    OfficialLayout(
        "ESRGAN / BasicSR RRDBNet", "rrdbnet", rrdbnet.is_official, rrdbnet.official_key_map, rrdbnet.convert_official
    ),
    OfficialLayout("EDSR-PyTorch EDSR", "edsr", edsr.is_official, edsr.official_key_map, edsr.convert_official),
    OfficialLayout("EDSR-PyTorch RCAN", "rcan", rcan.is_official, rcan.official_key_map, rcan.convert_official),
    OfficialLayout(
        "ESRGAN / BasicSR VGG-128 discriminator",
        "vgg-128",
        discriminators.is_official,
        discriminators.official_key_map,
        discriminators.convert_official,
        role="discriminator",
    ),
    OfficialLayout(
        "PCL embedding network E_D",
        "pcl-embedding",
        embedding.is_official,
        embedding.official_key_map,
        embedding.convert_official,
        role="discriminator",  # PCL's E_D is a critic whose features embed images (paper 004 sec. III-C)
    ),
)


def _first_sentence(error: Exception) -> str:
    """An exception's first line without terminal colour codes (torch decorates some of its messages)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_official_state_dict(path: Path) -> dict[str, Tensor]:
    """A .pth state dict loaded without executing pickled code, canonicalized (wrappers and prefixes gone)."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(2)
    # torch.save writes a zip archive (PK); older files are a bare pickle (protocol byte 0x80).
    if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a torch.save archive nor a pickle)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "global" not in str(error):  # not a refused class or function: a damaged pickle
            raise CheckpointError(f"{path}: corrupt checkpoint (its pickle cannot be read)") from None
        raise CheckpointError(
            f"{path}: refused, it holds pickled Python objects besides tensors, and srtk never runs code from a "
            "checkpoint; save its state_dict() alone and convert that"
        ) from None
    except Exception as error:  # noqa: BLE001 - a damaged archive raises many kinds; all mean "unreadable"
        raise CheckpointError(f"{path}: corrupt checkpoint ({_first_sentence(error)})") from None
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict")
    state = canonicalize(raw)
    if not state:
        keys = listed([str(key) for key in raw]) if raw else "none"
        raise CheckpointError(f"{path}: holds no tensors (keys: {keys})")
    return state


def nearest_layout(state: Mapping[str, Tensor]) -> tuple[OfficialLayout, KeyMap, float]:
    """The layout whose key map knows the largest share of the keys: (layout, its key map, that share)."""
    scored = []
    for layout in OFFICIAL_LAYOUTS:
        key_map = layout.key_map(state)
        scored.append((layout, key_map, key_map.known_share(state)))
    return max(scored, key=lambda item: item[2])  # ties: the earlier layout


def convert_official_checkpoint(path: Path) -> OfficialCheckpoint:
    """The layout, registry config and srtk state dict of an official checkpoint file."""
    state = read_official_state_dict(path)
    for layout in OFFICIAL_LAYOUTS:
        if layout.detect(state):
            try:
                config, converted = layout.convert(state)
            except CheckpointError as error:
                raise CheckpointError(f"{path}: {error}") from None
            return OfficialCheckpoint(layout, config, converted)
    names = ", ".join(layout.name for layout in OFFICIAL_LAYOUTS)
    message = f"{path}: unknown checkpoint layout (keys {listed(list(state))})"
    layout, key_map, share = nearest_layout(state)
    if share > 0:
        unknown = [key for key in state if not key_map.lookup(key)[0]]
        differs = f"unexpected keys {listed(unknown)}" if unknown else "it lacks the keys that identify it"
        message += f"; nearest known layout: {layout.name}, knowing {share:.0%} of its keys ({differs})"
    raise CheckpointError(f"{message}; srtk reads: {names}")
