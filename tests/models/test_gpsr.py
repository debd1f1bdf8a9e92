"""GPSR (paper 003): tiny-config smoke tests, module known answers, ablation switches, full-size counts."""

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from srtk.errors import ConfigError
from srtk.models.complexity import count_macs, count_parameters
from srtk.models.gpsr import DECODER_FEATURES, GPSR, LRSAM, RS3AMSR, GPSROutput, ResidualBranch
from srtk.models.registry import build_model

LR_SIZE = 16
# Tiny widths that keep every channel count divisible where the layout divides (sub-pixel, LRSAM squeeze).
TINY = {4: dict(scale=4, num_features=4), 8: dict(scale=8, num_features=2)}
TINY_DEPTH = dict(num_modules=2, num_residual_blocks=2)

PAPER_X4_PARAMETERS = 8.18e6  # Table 4
PAPER_X4_MACS = 1098e9  # Table 4 "FLOPs" at a 1280x720 output
PAPER_X8_PARAMETERS = 14.42e6  # Table 4
PAPER_X8_MACS = 382e9  # Table 4, same 1280x720 output
# Table 4 rounds to 0.01M (its HAN x8 16,219,457 prints as 16.22M, NLSN x8 46,516,803 as 46.52M): an exact
# reading lands within 0.005M. srtk's x4 is one rounding step off (8.19M): the paper gives no widths or kernel
# sizes, and reaching 8.18M takes two unmotivated tweaks (srtk/models/gpsr.py docstring), so 0.01M.
X4_TOLERANCE = 0.01e6
SRTK_X4_PARAMETERS = 8_189_161  # closed form below and the built model agree on this
SRTK_X4_MACS = 1_011_022_041_600
# DRN's rule at x8 (n * 2^N = 64, n = 8): no reading gives 14.42M together with 8.18M (gpsr.py docstring).
SRTK_X8_PARAMETERS = 9_438_108
SRTK_X8_MACS = 469_358_789_760


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    # Hundreds of tiny convolutions: intra-op threads only add contention on the shared 2-core machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _conv(cin: int, cout: int, kernel: int) -> int:
    return cin * cout * kernel * kernel + cout


def _closed_form_parameters(n: int, levels: int, m: int = 4, b: int = 4, reduction: int = 4) -> int:
    """GPSR's parameter count written out from the layout in srtk/models/gpsr.py's docstrings."""

    def lrsam(w: int) -> int:
        r = w // reduction  # squeeze 1x1, strided 3x3, two 3x3, x3 sub-pixel 3x3, restore 1x1
        return _conv(w, r, 1) + 3 * _conv(r, r, 3) + _conv(r, 9 * r, 3) + _conv(r, w, 1)

    def residual(w: int) -> int:
        return 2 * _conv(w, w, 3)

    def subpixel(cin: int, cout: int) -> int:
        return _conv(cin, 4 * cin, 3) + _conv(cin, cout, 3)

    total = _conv(3, n, 3) + _conv(3, n * 2**levels, 3) + _conv(3 * n, 3, 3)  # head, gradient head, tail
    total += sum(_conv(c, 2 * c, 3) + _conv(2 * c, 2 * c, 3) for c in (n * 2**level for level in range(levels)))
    for j in range(1, levels + 1):
        width = n * 2**levels if j == 1 else 3 * n * 2 ** (levels - j + 1)  # decoder j
        skip, grad = n * 2 ** (levels - j), n * 2 ** (levels - j + 1)
        total += m * (b * (residual(width) + lrsam(width)) + _conv(b * width, width, 1)) + subpixel(width, skip)
        rs3am_g = m * (residual(grad) + lrsam(grad + width) + _conv(grad + width, grad, 3))
        total += rs3am_g + _conv(m * grad, grad, 1) + subpixel(grad, skip) + _conv(skip, 3, 3)
    return total


@pytest.mark.parametrize("scale", [4, 8])
def test_tiny_forward_backward(scale: int) -> None:
    model = GPSR(**TINY[scale], **TINY_DEPTH)
    lr = torch.rand(1, 3, LR_SIZE, LR_SIZE)
    out = model(lr)
    assert isinstance(out, GPSROutput)
    assert out.sr.shape == (1, 3, LR_SIZE * scale, LR_SIZE * scale)
    # G_s at LR size * 2^s (eq. 12-13): the shapes of g(bicubic_down(HR)) the GG loss compares them with.
    expected = [(1, 3, LR_SIZE * 2**s, LR_SIZE * 2**s) for s in range(1, scale.bit_length())]
    assert [tuple(g.shape) for g in out.gradient_maps] == expected
    assert all(torch.isfinite(t).all() for t in (out.sr, *out.gradient_maps))
    hr = torch.rand_like(out.sr)
    loss = (out.sr - hr).abs().mean() + sum(g.abs().mean() for g in out.gradient_maps)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    zero = [name for name, p in model.named_parameters() if p.grad.abs().sum() == 0]
    assert zero == []  # every weight takes part in the outputs the losses see


def test_channels_last_and_bfloat16_agree_with_fp32() -> None:
    model = GPSR(**TINY[4], **TINY_DEPTH).eval()
    lr = torch.rand(1, 3, LR_SIZE, LR_SIZE)
    with torch.no_grad():
        reference = model(lr)
        last = model.to(memory_format=torch.channels_last)(lr.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(lr)
    torch.testing.assert_close(last.sr, reference.sr, atol=1e-5, rtol=1e-4)
    for got, want in zip(last.gradient_maps, reference.gradient_maps, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # bf16 keeps 8 mantissa bits: a few 1e-2 after ~50 layers on [0, 1] data.
    assert (half.sr.float() - reference.sr).abs().max() < 5e-2


def test_lrsam_mask_halves_features_when_restore_is_zero() -> None:
    attention = LRSAM(num_features=8)
    nn.init.zeros_(attention.restore.weight)
    nn.init.zeros_(attention.restore.bias)
    features = torch.randn(1, 8, 10, 11)  # neither side a multiple of the stride 3: padded, then cropped
    torch.testing.assert_close(attention(features), 0.5 * features)  # sigmoid(0) = 1/2 everywhere


def test_lrsam_only_shrinks_features() -> None:
    features = torch.randn(2, 8, 13, 7)
    out = LRSAM(num_features=8)(features)
    assert out.shape == features.shape
    assert torch.all(out.abs() <= features.abs())  # a sigmoid mask in (0, 1) rescales, never amplifies
    assert torch.all(out * features >= 0)


def test_rs3am_sr_without_crfs_is_a_plain_residual_stack() -> None:
    block = RS3AMSR(num_features=8, num_residual_blocks=3, attention=None, use_crfs=False)
    x = torch.randn(1, 8, 6, 6)
    expected = x
    for branch in block.branches:
        expected = expected + branch(expected)
    torch.testing.assert_close(block(x), expected)
    assert all(isinstance(b, ResidualBranch) for b in block.branches) and block.gate is None


def test_rs3am_sr_with_zero_gate_is_identity() -> None:
    block = RS3AMSR(num_features=8, num_residual_blocks=4, attention=None, use_crfs=True)
    nn.init.zeros_(block.gate.weight)
    nn.init.zeros_(block.gate.bias)
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(block(x), x)  # F_d = x + H_gate(...) (eq. 22): only the gate adds


def test_ablation_switches_change_the_network() -> None:
    counts = {
        name: count_parameters(GPSR(**TINY[4], **switches))
        for name, switches in {
            "full": {},
            "no_ggs": dict(use_gradient_branch=False),
            "no_crfs": dict(use_crfs=False),
            "no_lrsam": dict(use_lrsam=False),
            "baseline": dict(use_gradient_branch=False, use_crfs=False, use_lrsam=False),
        }.items()
    }
    assert len(set(counts.values())) == len(counts)
    assert counts["baseline"] < min(counts["no_ggs"], counts["no_crfs"], counts["no_lrsam"])
    assert max(counts["no_ggs"], counts["no_crfs"], counts["no_lrsam"]) < counts["full"]
    out = GPSR(**TINY[4], **TINY_DEPTH, use_gradient_branch=False)(torch.rand(1, 3, LR_SIZE, LR_SIZE))
    assert out.gradient_maps == () and out.sr.shape == (1, 3, 4 * LR_SIZE, 4 * LR_SIZE)


def test_non_power_of_two_scale_is_rejected() -> None:
    with pytest.raises(ConfigError, match="power-of-two"):
        GPSR(scale=3)


@pytest.mark.parametrize(("n", "levels"), [(4, 2), (2, 3), (16, 2), (8, 3), (10, 3)])
def test_parameter_count_matches_closed_form(n: int, levels: int) -> None:
    with torch.device("meta"):  # shapes only: no weights are allocated or initialised
        model = GPSR(scale=2**levels, num_features=n)
    assert count_parameters(model) == _closed_form_parameters(n, levels)


def test_full_size_x4_parameters_and_macs_against_the_paper() -> None:
    with torch.device("meta"):
        model = GPSR()
    parameters = count_parameters(model)
    macs = count_macs(model, (1, 3, 720 // 4, 1280 // 4))  # 1280x720 output, as in Table 4
    print(f"GPSR x4: {parameters:,} parameters (paper 8.18M), {macs / 1e9:.1f}G MACs (paper 1098G)")
    assert parameters == SRTK_X4_PARAMETERS == _closed_form_parameters(16, 2)
    assert abs(parameters - PAPER_X4_PARAMETERS) <= X4_TOLERANCE
    assert macs == SRTK_X4_MACS
    # FlopCounterMode counts convolutions only; the paper's tool also counts something we cannot identify.
    assert abs(macs / PAPER_X4_MACS - 1) < 0.1


def test_full_size_x8_parameters_and_macs_against_the_paper() -> None:
    with torch.device("meta"):
        model = GPSR(scale=8)
    parameters = count_parameters(model)
    macs = count_macs(model, (1, 3, 720 // 8, 1280 // 8))  # 1280x720 output, as in Table 4
    print(f"GPSR x8: {parameters:,} parameters (paper 14.42M), {macs / 1e9:.1f}G MACs (paper 382G)")
    assert parameters == SRTK_X8_PARAMETERS == _closed_form_parameters(8, 3)
    assert macs == SRTK_X8_MACS
    # The documented gap, not a tolerance: the paper's x8 pair (14.42M, 382G) fits no layout of eq. 2-6 that
    # also gives its x4 pair. DRN's rule is the closest reading in both columns, on opposite sides.
    assert PAPER_X8_PARAMETERS - parameters == 4_981_892  # -35%
    assert 1.2 < macs / PAPER_X8_MACS < 1.25  # +23%


def test_no_one_width_gives_the_papers_x8_count() -> None:
    # With the x4 layout fixed, 14.42M falls between two integer widths at x8 (the count grows with n), so
    # no width chosen for x8 alone reproduces it either (gpsr.py docstring).
    below, above = _closed_form_parameters(9, 3), _closed_form_parameters(10, 3)
    assert (below, above) == (11_916_412, 14_736_312)
    assert below < PAPER_X8_PARAMETERS - 0.005e6 and PAPER_X8_PARAMETERS + 0.005e6 < above


def test_scale_selects_the_widths() -> None:
    # reading: n * 2^N = DECODER_FEATURES at every scale (DRN's rule): n = 16 at x4, 8 at x8.
    with torch.device("meta"):
        x4, x8 = GPSR(scale=4), GPSR(scale=8)
        alias_x4 = build_model("gpsr-x8", scale=4)  # the alias adds no width of its own
        alias_x8 = build_model("gpsr-x8")
    assert (x4.head.out_channels, x8.head.out_channels) == (16, 8)
    assert x4.decoders[0].upsample.body[0].in_channels == x8.decoders[0].upsample.body[0].in_channels
    assert x8.decoders[0].upsample.body[0].in_channels == DECODER_FEATURES
    assert count_parameters(alias_x4) == count_parameters(x4) == SRTK_X4_PARAMETERS
    assert count_parameters(alias_x8) == count_parameters(x8) == SRTK_X8_PARAMETERS
    with pytest.raises(ConfigError, match="num_features"):
        GPSR(scale=128)  # 64 is not n * 2^7
