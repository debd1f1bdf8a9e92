"""Model complexity: parameters and FLOPs/MACs of one forward pass (the papers' Params and FLOPs columns).

FLOPs come from `torch.utils.flop_counter.FlopCounterMode`, which counts only matrix products and convolutions
(conv, mm, addmm, bmm, attention) and counts each multiply-add as 2 FLOPs; bias additions, activations,
pooling, pixel shuffle and interpolation are free. SR papers usually print multiply-accumulates (MACs) under
the name "FLOPs" (e.g. GPSR Table 4, 1098G at x4): compare those columns with `count_macs`, not `count_flops`.

The forward pass runs on the meta device whenever the model allows it: shapes propagate but no activation
(nor parameter copy) is ever allocated, so a 1280x720 output costs no memory. Models whose forward needs real
data (data-dependent control flow, `.item()`, ops without a meta kernel) fall back to a zero input on the
model's own device, under `no_grad` so no activations are kept for backward.
"""

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from srtk.runtime import model_device

# FlopCounterMode counts one multiply-add as two floating-point operations.
FLOPS_PER_MAC = 2


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters; tied (shared) tensors are counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _flops_on_meta(model: nn.Module, input_shape: Sequence[int]) -> int:
    # Swap every parameter and buffer for a meta tensor of the same shape for this one call:
    # the model itself is untouched and nothing of its size is copied.
    meta_state = {
        name: torch.empty_like(tensor, device="meta")
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]
    }
    dtype = next((t.dtype for t in meta_state.values() if t.is_floating_point()), torch.float32)
    inputs = torch.empty(tuple(input_shape), device="meta", dtype=dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        functional_call(model, meta_state, (inputs,))
    return int(counter.get_total_flops())


def _flops_on_device(model: nn.Module, input_shape: Sequence[int]) -> int:
    reference = next(iter(model.parameters()), torch.empty(0))
    dtype = reference.dtype if reference.is_floating_point() else torch.float32
    inputs = torch.zeros(tuple(input_shape), device=model_device(model), dtype=dtype)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(inputs)
    return int(counter.get_total_flops())


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs (2 per multiply-add, FlopCounterMode's convention) of `model(x)` for x of `input_shape` (NCHW).

    Runs in eval mode (restored afterwards) so that normalisation layers neither branch nor update statistics.
    """
    was_training = model.training
    model.eval()
    try:
        try:
            return _flops_on_meta(model, input_shape)
        except RuntimeError:  # NotImplementedError (no meta kernel) is a RuntimeError too
            return _flops_on_device(model, input_shape)
    finally:
        model.train(was_training)


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass: what most SR papers print as "FLOPs"."""
    return count_flops(model, input_shape) // FLOPS_PER_MAC
