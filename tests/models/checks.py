"""Checks shared by the model test files: forward/backward smoke test, channels_last and bf16 agreement."""

import torch
from torch import Tensor, nn

from srtk.models.backbone import SRBackbone


def check_smoke(model: SRBackbone, lr: Tensor) -> Tensor:
    """Forward + backward: SR size, finite output, every parameter gets a non-zero finite gradient."""
    model.train()
    sr = model(lr)
    n, c, h, w = lr.shape
    assert sr.shape == (n, c, h * model.scale, w * model.scale)
    assert torch.isfinite(sr).all()
    sr.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name} has a non-finite gradient"
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"
    return sr


def check_channels_last_and_autocast(
    model: nn.Module, lr: Tensor, *, bf16_rtol: float = 0.02, seed: int | None = None
) -> None:
    """channels_last input gives the fp32 result (1e-5); a CPU bfloat16 autocast forward stays close to it.

    bf16 keeps 8 mantissa bits (~0.4% per op); through a dozen convs the error stays within a few percent of
    the output's range, far below what a wrong layout would give. `seed` reseeds torch before each forward,
    for models that draw random numbers (NLSN's hashing).
    """

    def run(img: Tensor) -> Tensor:
        if seed is not None:
            torch.manual_seed(seed)
        return model(img)

    model.eval()
    with torch.no_grad():
        reference = run(lr)
        channels_last = run(lr.contiguous(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = run(lr)
    scale = reference.abs().max().item()
    torch.testing.assert_close(channels_last, reference, atol=1e-5 * scale, rtol=0)
    assert mixed.shape == reference.shape
    error = (mixed.float() - reference).abs().max().item()
    assert error <= bf16_rtol * scale, f"bf16 autocast error {error:.4g} vs output scale {scale:.4g}"


def parameter_count(model: nn.Module) -> int:
    return sum(param.numel() for param in model.parameters())


def assert_trains(model: nn.Module, loss: Tensor) -> None:
    """`loss` is finite and its backward reaches every parameter of `model` with a finite gradient."""
    assert torch.isfinite(loss).all()
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name


def check_named_outputs_channels_last_and_bf16(model: nn.Module, lr: Tensor, fields: tuple[str, ...]) -> None:
    """Every field of a NamedTuple output: channels_last equals fp32 (1e-4), bf16 autocast within 5% of range."""
    model.eval()
    with torch.no_grad():
        reference = model(lr)
        last = model.to(memory_format=torch.channels_last)(lr.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(lr)
    for name in fields:
        want = getattr(reference, name)
        torch.testing.assert_close(getattr(last, name), want, rtol=1e-4, atol=1e-5)
        assert (getattr(half, name).float() - want).abs().max() <= 0.05 * want.abs().max(), name


def _flat_tensors(value: object) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    return [t for item in value for t in _flat_tensors(item)]  # type: ignore[attr-defined]


def check_all_outputs_channels_last_and_bf16(model: nn.Module, x: Tensor) -> None:
    """Every tensor of a (nested) tuple output: channels_last within 1e-5, bf16 autocast within 5% (+ scale)."""
    model.eval()
    with torch.no_grad():
        reference = model(x)
        last = model(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    for other, tol in ((last, 1e-5), (low, 0.05)):
        for a, b in zip(_flat_tensors(reference), _flat_tensors(other), strict=True):
            torch.testing.assert_close(b.float(), a, atol=tol * a.abs().max().item() + tol, rtol=tol)
