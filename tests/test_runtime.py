from typing import NamedTuple

import pytest
import torch
from torch import Tensor, nn

from srtk.errors import ConfigError, SrtkError
from srtk.runtime import (
    PRECISIONS,
    autocast_context,
    check_precision,
    model_device,
    pick_device,
    resolve_precision,
    sr_image,
)


class TwoBranch(NamedTuple):
    sr: Tensor
    grad_branch: Tensor | None = None


def test_pick_device_auto_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")


def test_pick_device_named() -> None:
    assert pick_device("cpu") == torch.device("cpu")


def test_pick_device_unknown_name_is_one_line_error() -> None:
    with pytest.raises(SrtkError, match="unknown device 'gpu0'") as error:
        pick_device("gpu0")
    assert "\n" not in str(error.value)


def test_pick_device_cuda_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SrtkError, match="'cuda:1' requested but CUDA is not available"):
        pick_device("cuda:1")


def test_autocast_fp32_is_a_no_op() -> None:
    a, b = torch.rand(4, 4), torch.rand(4, 4)
    with autocast_context(torch.device("cpu"), "fp32"):
        product = a @ b
        assert not torch.is_autocast_enabled("cpu")
    assert product.dtype == torch.float32
    torch.testing.assert_close(product, a @ b, rtol=0, atol=0)


def test_autocast_bf16_runs_a_cpu_matmul_in_bfloat16() -> None:
    a, b = torch.rand(4, 4), torch.rand(4, 4)
    with autocast_context(torch.device("cpu"), "bf16"):
        product = a @ b
    assert product.dtype == torch.bfloat16
    torch.testing.assert_close(product, (a.bfloat16() @ b.bfloat16()), rtol=0, atol=0)


def test_check_precision_accepts_the_listed_names() -> None:
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    for precision in ("fp32", "bf16"):
        check_precision(precision, torch.device("cpu"))
    check_precision("fp16", torch.device("cuda"))  # a device object only: no CUDA needed to check


def test_check_precision_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown precision 'fp8'; choose one of: fp32, bf16, fp16"):
        check_precision("fp8", torch.device("cpu"))
    with pytest.raises(ConfigError, match="unknown precision"):
        autocast_context(torch.device("cpu"), "half")


def test_check_precision_fp16_needs_cuda() -> None:
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        autocast_context(torch.device("cpu"), "fp16")


def test_sr_image_of_a_tensor_and_of_a_named_tuple() -> None:
    sr = torch.rand(1, 3, 8, 8)
    assert sr_image(sr) is sr
    assert sr_image(TwoBranch(sr=sr, grad_branch=torch.zeros(1, 3, 8, 8))) is sr


def test_sr_image_of_a_bare_tuple_is_an_error() -> None:
    with pytest.raises(SrtkError, match="tuple has no `sr` image field"):
        sr_image((torch.rand(1, 3, 8, 8),))


def test_model_device() -> None:
    assert model_device(nn.Conv2d(3, 3, 1)) == torch.device("cpu")
    assert model_device(nn.Identity()) == torch.device("cpu")  # parameter-free
    meta = nn.Conv2d(3, 3, 1, device="meta")
    assert model_device(meta) == torch.device("meta")


def test_auto_precision_follows_the_device_and_the_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu, fp16_safe=True) == "fp32"  # never a reduced dtype the CPU runs badly
    assert resolve_precision("bf16", cpu) == "bf16"  # an explicit choice stays
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)  # pre-Ampere
    assert resolve_precision("auto", cuda, fp16_safe=True) == "fp16"
    assert resolve_precision("auto", cuda, fp16_safe=False) == "fp32"


def test_auto_precision_is_checked_but_must_be_resolved_before_autocast() -> None:
    check_precision("auto", torch.device("cpu"))  # no error: it resolves to what the device runs
    with pytest.raises(ConfigError, match="must be resolved"):
        autocast_context(torch.device("cpu"), "auto")
