"""Where and how a model runs: the device, the autocast precision, and the SR image of its output.

The lowest layer of srtk (torch, the standard library and srtk.errors only): inference, evaluation, training
and the model tools all pick devices and precisions here, so that "auto", "bf16" or a model's NamedTuple output
mean the same thing everywhere. Convention: RGB, NCHW, float in [0, 1].
"""

import contextlib
from typing import Any

import torch
from torch import Tensor, nn

from srtk.errors import ConfigError, SrtkError

PRECISIONS = ("fp32", "bf16", "fp16")  # fp32: no autocast; bf16/fp16: autocast to that dtype
AUTO = "auto"  # inference only: the fastest precision the device runs well (resolve_precision)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; otherwise the named device ('cpu', 'cuda', 'cuda:1')."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise SrtkError(f"unknown device {name!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SrtkError(f"device {name!r} requested but CUDA is not available")
    return device


def check_precision(precision: str, device: torch.device) -> None:
    """Raise a ConfigError for a precision outside PRECISIONS and 'auto', or fp16 anywhere but CUDA."""
    if precision == AUTO:
        return  # resolves to a precision the device supports
    if precision not in PRECISIONS:
        choices = ", ".join((*PRECISIONS, AUTO))
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {choices}")
    if precision == "fp16" and device.type != "cuda":
        # fp16 needs gradient scaling to train and is slow or missing off CUDA; bf16 has fp32's range.
        raise ConfigError(f"precision fp16 needs CUDA, not {device.type} (use bf16 there)")


def resolve_precision(precision: str, device: torch.device, *, fp16_safe: bool = False) -> str:
    """The precision to run inference in: `precision` itself, or for 'auto' fp32 on CPU (bf16 autocast is slower
    than fp32 on most CPUs), bf16 on GPUs that have it, fp16 only for architectures declared fp16-safe."""
    check_precision(precision, device)
    if precision != AUTO:
        return precision
    if device.type != "cuda":
        return "fp32"
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return "fp16" if fp16_safe else "fp32"


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to bf16/fp16 on `device` for 'bf16'/'fp16', nothing for 'fp32'; checked by check_precision."""
    check_precision(precision, device)
    if precision == AUTO:
        raise ConfigError("precision 'auto' must be resolved (resolve_precision) before autocast")
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter or buffer (CPU for models with neither, e.g. bicubic)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def sr_image(output: Tensor | tuple[Any, ...]) -> Tensor:
    """The SR image of a model's output: the tensor itself, or the `sr` field of a NamedTuple output."""
    if isinstance(output, Tensor):
        return output
    sr = getattr(output, "sr", None)
    if not isinstance(sr, Tensor):  # a bare tuple says nothing about which element is the image
        raise SrtkError(f"a model output of type {type(output).__name__} has no `sr` image field")
    return sr
