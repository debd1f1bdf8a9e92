"""`srtk info`: what a model is: parameters, FLOPs at an input size, feature taps."""

from typing import Any

from torch import nn

from srtk.errors import SrtkError
from srtk.models.backbone import SRBackbone, evenly_spaced_taps
from srtk.models.complexity import count_flops, count_parameters
from srtk.models.registry import MODELS, PARAMETER_FREE, build_model, load_model_with_card


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
        taps = taps or evenly_spaced_taps(backbone.num_blocks)
        return f"after blocks {', '.join(map(str, taps))} of {backbone.num_blocks}"
    return "-"


def describe_model(name_or_path: str, *, scale: int = 4, lr_size: str = "320x180") -> dict[str, Any]:
    """Architecture, parameter count, FLOPs/MACs at `lr_size` and taps of a registry name or checkpoint."""
    height, width = parse_size(lr_size)
    if name_or_path in MODELS and name_or_path not in PARAMETER_FREE:
        network = build_model(name_or_path, scale=scale)
        architecture, source = name_or_path, "registry defaults (untrained)"
    else:
        model, card = load_model_with_card(name_or_path, scale=scale)
        network = getattr(model, "network", model)
        architecture, source = card.architecture, card.source
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
    }
