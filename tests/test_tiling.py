"""srtk.tiling: streamed, blended tiles equal the untiled SR; OOM halving; fp32 re-runs; auto tile; memory bounds."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import Tensor, nn

import srtk.tiling as tiling
from srtk.errors import SrtkWarning
from srtk.models.bicubic import Bicubic
from srtk.models.registry import build_model
from srtk.tiling import TILED_BOUND, TileStats, default_overlap, self_ensemble, upscale_tiled


class TinySR(nn.Module):
    """Two 3x3 convs and a pixel shuffle: a receptive field of 2 LR pixels."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3 * scale**2, 3, padding=1))
        self.shuffle = nn.PixelShuffle(scale)

    def forward(self, lr: Tensor) -> Tensor:
        return self.shuffle(self.body(lr))


class Ones(nn.Module):
    """SR = 1 everywhere: what the tiler makes of it is the sum of the blend weights."""

    def forward(self, lr: Tensor) -> Tensor:
        return torch.ones(lr.shape[0], 3, lr.shape[-2] * 2, lr.shape[-1] * 2)


# The acceptance configs: tiny, so that the receptive field (which grows with depth) stays below the default cap.
TINY = {
    "rrdbnet": {"num_features": 8, "num_blocks": 1, "growth_channels": 4},
    "edsr": {"num_features": 8, "num_blocks": 2},
    "spsr": {"num_features": 8, "num_blocks": 1, "growth_channels": 4, "num_taps": 1},
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_tiled_equals_untiled_for_registry_generators(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, scale=4, **TINY[name]).eval()
    overlap = default_overlap(model)
    size = 256 if name != "spsr" else 64  # spsr runs RRDBs at HR size: 64 keeps it to seconds on a laptop
    lr = torch.rand(1, 3, size, size)
    stats = TileStats()
    whole = upscale_tiled(model, lr, scale=4)
    tiled = upscale_tiled(model, lr, scale=4, tile=size // 2 - 8, stats=stats)
    assert stats.tiles == 9 and stats.overlap == overlap and stats.tile == size // 2 - 8
    assert (tiled - whole).abs().max() < TILED_BOUND


def test_default_overlap_is_the_receptive_field() -> None:
    assert default_overlap(build_model("rrdbnet", scale=4, **TINY["rrdbnet"])) == 19
    assert default_overlap(build_model("edsr", scale=4, **TINY["edsr"])) == 8
    assert default_overlap(build_model("rrdbnet")) == tiling.MAX_DEFAULT_OVERLAP  # 349, capped
    assert default_overlap(build_model("rcan", num_groups=1, blocks_per_group=1)) == tiling.UNBOUNDED_OVERLAP
    assert default_overlap(lambda lr: lr) == tiling.UNBOUNDED_OVERLAP  # a plain callable declares nothing


def test_tiled_equals_untiled_for_bicubic_and_a_network() -> None:
    lr = torch.rand(1, 3, 37, 29)
    for model, scale in ((Bicubic(scale=4), 4), (TinySR(2).eval(), 2)):
        whole = upscale_tiled(model, lr, scale=scale)
        tiled = upscale_tiled(model, lr, scale=scale, tile=10, overlap=4)
        assert tiled.shape == whole.shape
        assert (tiled - whole).abs().max() < TILED_BOUND


def test_blend_weights_sum_to_one() -> None:
    sr = upscale_tiled(Ones(), torch.rand(2, 3, 50, 43), scale=2, tile=12, overlap=0, blend=4)
    torch.testing.assert_close(sr, torch.ones_like(sr), rtol=0, atol=1e-6)


def test_too_little_overlap_shows_seams_and_blending_softens_them() -> None:
    torch.manual_seed(0)
    lr = torch.rand(1, 3, 32, 32)
    model = TinySR(2).eval()
    whole = upscale_tiled(model, lr, scale=2)
    hard = upscale_tiled(model, lr, scale=2, tile=8, overlap=0, blend=0)  # hard crops, no context
    assert (hard - whole).abs().max() > 1e-3  # the exactness tests above could not pass by accident
    blended = upscale_tiled(model, lr, scale=2, tile=8, overlap=0, blend=2)
    # without context blending is not exact either, but a cross-fade puts little weight on each tile's bad edge
    assert (blended - whole).abs().max() < 0.5 * (hard - whole).abs().max()


def test_tiles_are_reported() -> None:
    calls = []
    upscale_tiled(
        Bicubic(scale=2), torch.rand(1, 3, 20, 20), scale=2, tile=8, on_tile=lambda d, t: calls.append((d, t))
    )
    assert calls == [(i, 9) for i in range(1, 10)]


class RunsOutOfMemory(nn.Module):
    """TinySR that raises torch.OutOfMemoryError (as CUDA would) for inputs with more than `limit` pixels."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.inner = TinySR(2).eval()
        self.limit = limit
        self.failures = 0

    def forward(self, lr: Tensor) -> Tensor:
        if lr.shape[-2] * lr.shape[-1] > self.limit:
            self.failures += 1
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return self.inner(lr)


def test_out_of_memory_halves_the_tile_once_and_says_so() -> None:
    torch.manual_seed(0)
    model = RunsOutOfMemory(limit=32 * 32)  # a 32-pixel tile reads up to 48x48 (4 + 4 context a side); 16 fits
    lr = torch.rand(1, 3, 64, 64)
    stats = TileStats()
    with pytest.warns(SrtkWarning, match="out of device memory with 32-pixel tiles") as caught:
        sr = upscale_tiled(model, lr, scale=2, tile=32, overlap=4, stats=stats)
    assert len([w for w in caught if issubclass(w.category, SrtkWarning)]) == 1  # said once, not per tile
    assert stats.halvings == 1 and stats.tile == 16 and model.failures == 1  # later tiles start small
    whole = upscale_tiled(model.inner, lr, scale=2)
    assert (sr - whole).abs().max() < TILED_BOUND  # the retried tile fits seamlessly


def test_out_of_memory_on_the_whole_image_falls_back_to_tiles() -> None:
    model = RunsOutOfMemory(limit=40 * 40)
    lr = torch.rand(1, 3, 48, 48)
    stats = TileStats()
    with pytest.warns(SrtkWarning, match="48-pixel tiles"):
        sr = upscale_tiled(model, lr, scale=2, tile=None, overlap=4, stats=stats)
    assert stats.tile == 24 and stats.halvings == 1
    assert (sr - upscale_tiled(model.inner, lr, scale=2)).abs().max() < TILED_BOUND


class OverflowsInReducedPrecision(nn.Module):
    """TinySR whose output is inf under autocast, as an fp16 overflow would be."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = TinySR(2).eval()

    def forward(self, lr: Tensor) -> Tensor:
        sr = self.inner(lr)
        return sr + float("inf") if torch.is_autocast_enabled("cpu") else sr


def test_non_finite_reduced_precision_tiles_are_rerun_in_fp32_and_counted() -> None:
    model = OverflowsInReducedPrecision()
    lr = torch.rand(1, 3, 24, 24)
    stats = TileStats()
    sr = upscale_tiled(model, lr, scale=2, tile=12, overlap=2, precision="bf16", stats=stats)
    assert stats.fp32_reruns == stats.tiles == 4 and stats.precision == "bf16"
    torch.testing.assert_close(sr, upscale_tiled(model.inner, lr, scale=2), rtol=0, atol=TILED_BOUND)


def test_auto_precision_is_fp32_on_cpu() -> None:
    stats = TileStats()
    upscale_tiled(TinySR(2).eval(), torch.rand(1, 3, 8, 8), scale=2, precision="auto", stats=stats)
    assert stats.precision == "fp32"


def test_auto_tile_is_the_whole_image_when_it_fits_and_tiles_when_memory_is_short(monkeypatch) -> None:
    torch.manual_seed(0)
    model = TinySR(2).eval()
    lr = torch.rand(1, 3, 96, 96)
    stats = TileStats()
    whole = upscale_tiled(model, lr, scale=2, tile="auto", overlap=2, stats=stats)
    assert stats.tile is None and stats.tiles == 1
    # the CPU estimate: 4 x the largest activation per pixel = 4 * 12 channels * 4 bytes = 192 bytes per LR pixel
    monkeypatch.setattr(tiling, "_free_bytes", lambda device: int(192 * 48 * 48 / tiling.AUTO_MEMORY_FRACTION))
    tiled = upscale_tiled(model, lr, scale=2, tile="auto", overlap=2, stats=stats)
    assert stats.tile == 32  # 48 - 2 * (2 + 4) = 36 pixels fit, rounded down to a multiple of 16
    assert (tiled - whole).abs().max() < TILED_BOUND


def test_lr_and_canvas_stay_where_the_caller_keeps_them() -> None:
    lr = torch.rand(1, 3, 20, 20, dtype=torch.float64)  # an fp64 "host" image, an fp32 model: tiles are cast
    sr = upscale_tiled(TinySR(2).eval().double(), lr, scale=2, tile=8)
    assert sr.device == lr.device and sr.dtype == torch.float32


BIG_RUN = """
import json, resource, sys
import torch
from torch import nn
from srtk.tiling import TileStats, upscale_tiled

torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(3, 48, 3, padding=1), nn.PixelShuffle(4)).eval()  # a small x4 generator
largest = [0]
model.register_forward_pre_hook(lambda module, args: largest.__setitem__(0, max(largest[0], args[0].numel())))
lr = torch.rand(1, 3, {size}, {size})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # bytes on Linux
stats = TileStats()
sr = upscale_tiled(model, lr, scale=4, tile={tile}, overlap=1, stats=stats)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"growth": peak - before, "output": sr.numel() * 4, "largest": largest[0], "tiles": stats.tiles}}))
"""

PEAK_HOST_MULTIPLE = 1.25  # peak host memory growth <= this x the SR output's bytes (+ a fixed allowance)
FIXED_ALLOWANCE = 64 << 20


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in kilobytes on Linux only")
def test_4096_pixel_input_in_128_pixel_tiles_has_bounded_memory() -> None:
    size, tile = 4096, 128
    script = textwrap.dedent(BIG_RUN.format(size=size, tile=tile))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=900)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["tiles"] == (size // tile) ** 2
    # "device memory": the largest input the model saw is one padded tile (core + 2 x (overlap + blend))
    padded = tile + 2 * (1 + tiling.BLEND)
    assert measured["largest"] == 3 * padded * padded
    assert measured["growth"] <= PEAK_HOST_MULTIPLE * measured["output"] + FIXED_ALLOWANCE


def test_self_ensemble_of_bicubic_is_bicubic() -> None:
    # MATLAB bicubic is equivariant to flips and transposition: the 8-fold ensemble changes nothing.
    lr = torch.rand(1, 3, 12, 9, dtype=torch.float64)
    model = Bicubic(scale=3)
    torch.testing.assert_close(self_ensemble(model, lr), model(lr))


def test_auto_tile_on_cpu_sees_an_exported_graphs_activations_and_keeps_under_the_cpu_budget() -> None:
    # An ONNX runner hides its activations from hooks: the memory per pixel comes from its export's metadata,
    # and on CPU the working set stays under CPU_AUTO_BUDGET however much RAM is free.
    from srtk.tiling import CPU_AUTO_BUDGET, _Runner, auto_tile

    class Opaque(nn.Module):
        bytes_per_lr_pixel = 16_000.0  # about full RRDBNet's

        def forward(self, lr: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(lr, scale_factor=4)

    model = Opaque()
    run = _Runner(model, torch.device("cpu"), "fp32", TileStats())
    lr = torch.zeros(1, 3, 1024, 1024)
    tile = auto_tile(run, model, lr, margin=64)
    assert tile is not None and (tile + 2 * 64) ** 2 * 16_000.0 <= CPU_AUTO_BUDGET
    assert auto_tile(run, model, torch.zeros(1, 3, 64, 64), margin=64) is None  # small images stay whole
