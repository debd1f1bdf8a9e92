"""`srtk info`: what a model is: parameters, FLOPs at an input size, feature taps."""

from typing import Any

from torch import nn

from srtk.errors import SrtkError
from srtk.models.backbone import SRBackbone, evenly_spaced_taps
from srtk.models.bundled import bundled_path
from srtk.models.checkpoint import ModelCard
from srtk.models.complexity import count_flops, count_parameters
from srtk.models.registry import AUXILIARY, MODELS, PARAMETER_FREE, build_model, load_model_with_card

TAPS_OF_SPSR = 4  # the gradient branch's four feature taps (paper 000 sec. 3.2)


def parse_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SrtkError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 320x180") from None
    if width <= 0 or height <= 0:
        raise SrtkError(f"size {text!r} must be positive")
    return height, width


def _taps(network: nn.Module) -> str:
    backbone = network if isinstance(network, SRBackbone) else getattr(network, "backbone", None)
    taps = getattr(network, "taps", None)
    if isinstance(backbone, SRBackbone):
        if not taps and backbone.num_blocks < TAPS_OF_SPSR:
            return f"none by default ({backbone.num_blocks} blocks; SPSR's branch taps {TAPS_OF_SPSR})"
        taps = taps or evenly_spaced_taps(backbone.num_blocks, TAPS_OF_SPSR)
        return f"after blocks {', '.join(map(str, taps))} of {backbone.num_blocks}"
    return "-"


def describe_model(name_or_path: str, *, scale: int = 4, lr_size: str = "320x180") -> dict[str, Any]:
    """Architecture, parameter count, FLOPs/MACs at `lr_size` and taps of a registry name or checkpoint."""
    height, width = parse_size(lr_size)
    trained: dict[str, Any] = {}
    if name_or_path in MODELS and name_or_path not in PARAMETER_FREE and bundled_path(name_or_path) is None:
        network = build_model(name_or_path, scale=scale)
        architecture, source = name_or_path, "registry defaults (untrained)"
    elif name_or_path in AUXILIARY:  # critics, extractors and embeddings: sized, but they upscale nothing
        return _describe_auxiliary(name_or_path, height, width)
    else:
        model, card = load_model_with_card(name_or_path, scale=scale)
        network = getattr(model, "network", model)
        architecture, source = card.architecture, card.source
        trained = _training_summary(card)
    model_scale = int(getattr(network, "scale", scale))
    flops = count_flops(network, (1, 3, height, width))
    return {
        "model": architecture,
        "source": source,
        "scale": model_scale,
        "parameters": f"{count_parameters(network):,} ({count_parameters(network) / 1e6:.2f} M)",
        "input": f"{width}x{height} -> {width * model_scale}x{height * model_scale}",
        "MACs": f"{flops / 2 / 1e9:.1f} G (multiply-adds; most SR papers call these FLOPs)",
        "FLOPs": f"{flops / 1e9:.1f} G (2 per multiply-add)",
        "taps": _taps(network),
        **trained,
    }


def _training_summary(card: ModelCard) -> dict[str, Any]:
    """What a card says of the model's training and measured quality (the bundled models record both)."""
    summary: dict[str, Any] = {}
    if card.method:
        summary["method"] = card.method + (
            f" ({', '.join(f'{k} {v:g}' for k, v in card.losses.items())})" if card.losses else ""
        )
    if card.training_data:
        summary["data"] = card.training_data
    training = card.training
    if training.get("iterations"):
        minutes = f", {training['wall_time_s'] / 60:.0f} min" if training.get("wall_time_s") else ""
        summary["training"] = f"{training['iterations']} iterations{minutes} on {training.get('hardware', '?')}"
    for term, why in training.get("inactive_losses", {}).items():
        summary[f"no {term}"] = why
    for dataset, values in card.metrics.items():
        if isinstance(values, dict) and "psnr_y" in values:
            summary[dataset] = " / ".join(f"{k} {v:.4g}" for k, v in values.items())
    return summary


def _describe_auxiliary(name: str, height: int, width: int) -> dict[str, Any]:
    """A critic, extractor or embedding at its own input: the size it was built for (critics end in dense
    layers), else `height` x `width`; RGB, or the feature channels of its first convolution (D_SF reads NSE
    features)."""
    network = build_model(name)
    size = getattr(network, "input_size", None)
    height, width = (size, size) if size else (height, width)
    first_conv = next(module for module in network.modules() if isinstance(module, nn.Conv2d))
    try:
        channels, flops = 3, count_flops(network, (1, 3, height, width))
    except RuntimeError:  # not an image input
        channels = first_conv.in_channels
        flops = count_flops(network, (1, channels, height, width))
    return {
        "model": name,
        "source": "registry defaults (untrained; scores or embeds images, upscales nothing)",
        "parameters": f"{count_parameters(network):,} ({count_parameters(network) / 1e6:.2f} M)",
        "input": f"{width}x{height}, {channels} channels",
        "MACs": f"{flops / 2 / 1e9:.2f} G (multiply-adds)",
        "FLOPs": f"{flops / 1e9:.2f} G (2 per multiply-add)",
    }
