"""Running a model over an image: streamed, blended tiling (device memory bounded by one tile, same result as
untiled) and self-ensemble. The one path from an LR tensor to its SR tensor for `srtk upscale`, `srtk evaluate`
and validation.

Streaming: the LR image and the SR canvas stay where the caller keeps them (host memory for `srtk upscale`);
each tile is copied to the model's device, run, and its SR copied back, so device memory holds one padded tile.
Each tile core is read with `overlap` LR pixels of context (default: the model's receptive field,
srtk.models.capabilities) plus a `blend` margin; neighbouring tiles cross-fade over that margin with a raised-cosine
window whose weights sum to 1, so where the overlap covers the receptive field the result equals the untiled one
to float rounding (below TILED_BOUND), and where it does not (unbounded receptive fields) no seam is a hard edge.

Convention: RGB, NCHW, float in [0, 1]. A model maps LR (N, 3, h, w) to SR (N, 3, s*h, s*w), or to a NamedTuple
whose `sr` field is that image (the two-branch generators).
"""

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from srtk.errors import SrtkError, SrtkWarning
from srtk.models.capabilities import fp16_safe, receptive_field
from srtk.runtime import autocast_context, model_device, resolve_precision, sr_image

TILED_BOUND = 1e-5  # max |tiled - untiled| in fp32 when the overlap covers the receptive field (rounding only)
BLEND = 4  # LR pixels each side of a tile boundary over which neighbours cross-fade
MAX_DEFAULT_OVERLAP = 64  # cap on the receptive-field overlap (full RRDBNet reaches 349 px; its tail is ~0)
UNBOUNDED_OVERLAP = 32  # context for models with global operations (RCAN/HAN/NLSN) or none declared
MIN_TILE = 16  # an out-of-memory error halves the tile down to this, then gives up
AUTO_TILE_MULTIPLE = 16  # auto tiles are multiples of this (friendly to every upsampler and conv algorithm)
AUTO_MEMORY_FRACTION = 0.7  # `--tile auto` plans for this share of the free memory
PROBE_SIZE = 32  # LR side of the tile `--tile auto` measures the memory per pixel on
CPU_LIVE_ACTIVATIONS = 4  # on CPU, a forward holds about this many of its largest activation at once
# On CPU, `--tile auto` plans a tile's working set under this (an untiled 1024x1024 x4 RRDBNet needs ~14 GB).
# onnxruntime's memory arena, 2-3x faster than running without it on repeated tiles, about doubles what is
# planned: 1024 px x4 RRDBNet, 4 GiB planned, 8.4 GB peak, 9 tiles, 2 min 43 s on 2 cores.
CPU_AUTO_BUDGET = 4 << 30


@dataclass
class TileStats:
    """What a tiled run did, for the caller's report."""

    tiles: int = 0  # tiles run (after any splitting)
    fp32_reruns: int = 0  # tiles whose reduced-precision output was not finite, re-run in fp32
    halvings: int = 0  # out-of-memory errors that halved the tile
    tile: int | None = None  # the tile size used last (None: the whole image in one piece)
    overlap: int = 0
    precision: str = "fp32"

    def add(self, other: "TileStats") -> None:
        """Fold another run's counts into this one (one report over many images)."""
        self.tiles += other.tiles
        self.fp32_reruns += other.fp32_reruns
        self.halvings += other.halvings
        self.tile, self.overlap, self.precision = other.tile, other.overlap, other.precision


def prepare_for_inference(model: nn.Module) -> nn.Module:
    """`model` (in place) in the layout its convolutions run fastest in: channels_last (NHWC), which oneDNN on CPU
    and cuDNN's tensor cores prefer; upscale_tiled then feeds it NHWC tiles. Outputs agree with NCHW to ~1e-6
    (another summation order), so jobs whose numbers must equal training's (evaluate, validation) do not call it.
    benchmarks/bench_upscale.py measures it against plain NCHW eager."""
    return model.to(memory_format=torch.channels_last)


def default_overlap(model: Callable[..., object]) -> int:
    """The LR context a tile needs: the model's receptive field, capped; a fixed margin where it is unbounded."""
    radius = receptive_field(model) if isinstance(model, nn.Module) else None
    return UNBOUNDED_OVERLAP if radius is None else min(radius, MAX_DEFAULT_OVERLAP)


def _device_of(model: Callable[..., object], fallback: torch.device) -> torch.device:
    if isinstance(model, nn.Module) and any(True for _ in (*model.parameters(), *model.buffers())):
        return model_device(model)
    return fallback


def _splits(length: int, tile: int) -> list[int]:
    """Boundaries of ceil(length / tile) cores of near-equal size: [0, ..., length]."""
    count = max(1, -(-length // tile))
    return [round(i * length / count) for i in range(count + 1)]


@dataclass(frozen=True)
class _Core:
    """An LR rectangle [y0, y1) x [x0, x1) and the cross-fade half-width on each side (0 at the image border)."""

    y0: int
    y1: int
    x0: int
    x1: int
    top: int
    bottom: int
    left: int
    right: int

    def halves(self, blend: int) -> list["_Core"]:
        """The core cut in two along its longer side; the new boundary cross-fades over min(blend, half/2)."""
        if self.y1 - self.y0 >= self.x1 - self.x0:
            mid = (self.y0 + self.y1) // 2
            b = min(blend, (mid - self.y0) // 2, (self.y1 - mid) // 2)
            return [
                _Core(self.y0, mid, self.x0, self.x1, self.top, b, self.left, self.right),
                _Core(mid, self.y1, self.x0, self.x1, b, self.bottom, self.left, self.right),
            ]
        mid = (self.x0 + self.x1) // 2
        b = min(blend, (mid - self.x0) // 2, (self.x1 - mid) // 2)
        return [
            _Core(self.y0, self.y1, self.x0, mid, self.top, self.bottom, self.left, b),
            _Core(self.y0, self.y1, mid, self.x1, self.top, self.bottom, b, self.right),
        ]


def _grid(h: int, w: int, tile: int, blend: int) -> list[_Core]:
    ys, xs = _splits(h, tile), _splits(w, tile)
    by = min([blend] + [(b - a) // 2 for a, b in zip(ys, ys[1:], strict=False)])
    bx = min([blend] + [(b - a) // 2 for a, b in zip(xs, xs[1:], strict=False)])
    return [
        _Core(y0, y1, x0, x1, by if y0 > 0 else 0, by if y1 < h else 0, bx if x0 > 0 else 0, bx if x1 < w else 0)
        for y0, y1 in zip(ys, ys[1:], strict=False)
        for x0, x1 in zip(xs, xs[1:], strict=False)
    ]


def _ramp(length: int, rising: bool, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Raised cosine over `length` HR pixels; a rising and a falling ramp of one boundary sum to exactly 1."""
    t = (torch.arange(length, dtype=torch.float64) + 0.5) / length
    up = 0.5 - 0.5 * torch.cos(math.pi * t)
    return (up if rising else 1 - up).to(dtype=dtype, device=device)


def _fade(sr: Tensor, dim: int, start_fade: int, end_fade: int) -> None:
    """In place: weight the first `start_fade` HR pixels of `sr` along `dim` by a rising ramp, the last
    `end_fade` by a falling one (dim -2: rows, -1: columns)."""
    shape = (-1, 1) if dim == -2 else (-1,)
    if start_fade:
        sr.narrow(dim, 0, start_fade).mul_(_ramp(start_fade, True, sr.dtype, sr.device).view(shape))
    if end_fade:
        sr.narrow(dim, sr.shape[dim] - end_fade, end_fade).mul_(_ramp(end_fade, False, sr.dtype, sr.device).view(shape))


class _Runner:
    """One forward of a tile on the model's device in the run's precision, with the fp32 fallback."""

    def __init__(self, model: Callable[..., object], device: torch.device, precision: str, stats: TileStats) -> None:
        self.model, self.device, self.precision, self.stats = model, device, precision, stats

    def __call__(self, lr: Tensor) -> Tensor:
        x = lr.to(self.device, non_blocking=True)
        if isinstance(self.model, nn.Module):
            x = x.contiguous(memory_format=_memory_format(self.model))
        with autocast_context(self.device, self.precision):
            sr = sr_image(self.model(x))
        if self.precision != "fp32" and not bool(torch.isfinite(sr).all()):
            # fp16 overflows (and, rarely, bf16 rounding feeds a NaN): this tile alone runs again in fp32
            self.stats.fp32_reruns += 1
            sr = sr_image(self.model(x))
        self.stats.tiles += 1
        return sr.float()


def _memory_format(model: nn.Module) -> torch.memory_format:
    """Feed a channels_last model channels_last input (no layout conversion inside the first conv)."""
    for parameter in model.parameters():
        if parameter.dim() == 4:
            nhwc = parameter.is_contiguous(memory_format=torch.channels_last)
            return torch.channels_last if nhwc else torch.contiguous_format
    return torch.contiguous_format


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:  # Linux: what can be had without swapping (free pages + reclaimable cache), else the free pages
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # no sysconf (Windows): plan for 4 GiB
        return 4 << 30


def _bytes_per_pixel(run: _Runner, model: Callable[..., object], channels: int) -> float:
    """Memory one LR pixel of a tile costs: measured peak on CUDA, the largest activation x a factor on CPU."""
    probe = torch.rand(1, channels, PROBE_SIZE, PROBE_SIZE)
    pixels = PROBE_SIZE * PROBE_SIZE
    if run.device.type == "cuda":
        torch.cuda.synchronize(run.device)
        torch.cuda.reset_peak_memory_stats(run.device)
        before = torch.cuda.memory_allocated(run.device)
        run(probe)
        torch.cuda.synchronize(run.device)
        return (torch.cuda.max_memory_allocated(run.device) - before) / pixels
    declared = getattr(model, "bytes_per_lr_pixel", None)  # an exported graph: measured when it was exported
    if declared:
        return float(declared)
    if not isinstance(model, nn.Module):
        run(probe)
        return CPU_LIVE_ACTIVATIONS * probe.numel() * probe.element_size() / pixels
    return activation_bytes_per_pixel(model, channels)


@torch.no_grad()
def activation_bytes_per_pixel(model: nn.Module, channels: int = 3) -> float:
    """CPU estimate of the memory one LR pixel costs a forward of `model`: its largest activation (seen by
    forward hooks on a PROBE_SIZE input) times CPU_LIVE_ACTIVATIONS, per LR pixel."""
    probe = torch.rand(1, channels, PROBE_SIZE, PROBE_SIZE, device=model_device(model))
    largest = [probe.numel() * probe.element_size()]

    def record(_module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, Tensor):
            largest[0] = max(largest[0], output.numel() * output.element_size())

    handles = [m.register_forward_hook(record) for m in model.modules()]
    try:
        model(probe)
    finally:
        for handle in handles:
            handle.remove()
    return CPU_LIVE_ACTIVATIONS * largest[0] / (PROBE_SIZE * PROBE_SIZE)


def auto_tile(run: _Runner, model: Callable[..., object], lr: Tensor, margin: int) -> int | None:
    """The largest tile (a multiple of AUTO_TILE_MULTIPLE) whose padded forward fits the free device memory;
    None when the whole image fits."""
    probe = _Runner(model, run.device, run.precision, TileStats())  # the probe is not one of the image's tiles
    per_pixel = _bytes_per_pixel(probe, model, lr.shape[1]) * lr.shape[0]
    budget = AUTO_MEMORY_FRACTION * _free_bytes(run.device)
    if run.device.type == "cpu":  # host RAM is shared with everything else, and huge tensors cost page faults
        budget = min(budget, CPU_AUTO_BUDGET)
    h, w = lr.shape[-2:]
    if h * w * per_pixel <= budget:
        return None
    side = int(math.sqrt(budget / per_pixel)) - 2 * margin
    return max(MIN_TILE, side // AUTO_TILE_MULTIPLE * AUTO_TILE_MULTIPLE)


@torch.no_grad()
def upscale_tiled(
    model: Callable[[Tensor], Tensor | tuple],
    lr: Tensor,
    *,
    scale: int,
    tile: int | str | None = None,
    overlap: int | None = None,
    precision: str = "fp32",
    on_tile: Callable[[int, int], None] | None = None,
    blend: int = BLEND,
    stats: TileStats | None = None,
) -> Tensor:
    """SR of (N, 3, h, w) `lr` on the same device as `lr`, run tile by tile on the model's device.

    tile: LR core size, "auto" (the largest that fits the free memory) or None (the whole image at once).
    overlap: LR context read around each core; None = the model's receptive field (default_overlap).
    precision: fp32, bf16, fp16 or auto (srtk.runtime.resolve_precision). blend: cross-fade half-width.
    stats: filled with the tile count, fp32 re-runs and out-of-memory halvings.
    """
    stats = stats if stats is not None else TileStats()
    overlap = default_overlap(model) if overlap is None else overlap
    if overlap < 0 or blend < 0:
        raise SrtkError(f"tile overlap and blend must be >= 0, not {overlap} and {blend}")
    device = _device_of(model, lr.device)
    safe = isinstance(model, nn.Module) and fp16_safe(model)
    stats.precision = resolve_precision(precision, device, fp16_safe=safe)
    stats.overlap = overlap
    run = _Runner(model, device, stats.precision, stats)
    n, c, h, w = lr.shape
    if tile == "auto":
        tile = auto_tile(run, model, lr, overlap + blend)
    elif isinstance(tile, str):
        raise SrtkError(f"tile must be a positive size, 'auto' or None, not {tile!r}")
    if tile is not None and tile <= 0:
        raise SrtkError(f"tile must be positive, not {tile}")
    if tile is None or (h <= tile and w <= tile):
        try:
            sr = run(lr).to(lr.device)
            stats.tile = None
            if on_tile is not None:
                on_tile(1, 1)
            return sr
        except torch.OutOfMemoryError:  # the whole image does not fit: tiles of half its size
            if device.type == "cuda":
                torch.cuda.empty_cache()
            tile = max(h, w) // 2
            _warn_halved(stats, max(h, w), tile)
    stats.tile = tile
    canvas = torch.zeros(n, c, h * scale, w * scale, dtype=torch.float32, device=lr.device)
    tiler = _Tiler(run, lr, canvas, scale, overlap, blend, tile, stats)
    cores = _grid(h, w, tile, blend)
    for done, core in enumerate(cores, start=1):
        tiler.fill(core)
        if on_tile is not None:
            on_tile(done, len(cores))
    return canvas


def _warn_halved(stats: TileStats, old: int, new: int) -> None:
    if stats.halvings == 0:  # once per run: every later tile already uses the smaller size
        warnings.warn(
            f"out of device memory with {old}-pixel tiles: continuing with {new}-pixel tiles", SrtkWarning, stacklevel=3
        )
    stats.halvings += 1


class _Tiler:
    """Fills an SR canvas core by core, halving cores that run out of memory."""

    def __init__(
        self,
        run: _Runner,
        lr: Tensor,
        canvas: Tensor,
        scale: int,
        overlap: int,
        blend: int,
        tile: int,
        stats: TileStats,
    ) -> None:
        self.run, self.lr, self.canvas, self.scale = run, lr, canvas, scale
        self.overlap, self.blend, self.tile, self.stats = overlap, blend, tile, stats

    def fill(self, core: _Core) -> None:
        if max(core.y1 - core.y0, core.x1 - core.x0) > self.tile:  # a smaller tile since an OOM: split first
            for half in core.halves(self.blend):
                self.fill(half)
            return
        try:
            self._run_core(core)
        except torch.OutOfMemoryError:
            if self.tile // 2 < MIN_TILE:
                raise SrtkError(f"out of device memory even with {self.tile}-pixel tiles") from None
            if self.run.device.type == "cuda":
                torch.cuda.empty_cache()
            _warn_halved(self.stats, self.tile, self.tile // 2)
            self.tile //= 2
            self.stats.tile = self.tile
            self.fill(core)

    def _run_core(self, core: _Core) -> None:
        h, w = self.lr.shape[-2:]
        s, pad = self.scale, self.overlap
        # kept span: the core widened by the cross-fade on each inner side; read span: that plus the overlap
        ky0, ky1, kx0, kx1 = core.y0 - core.top, core.y1 + core.bottom, core.x0 - core.left, core.x1 + core.right
        ry0, ry1, rx0, rx1 = max(ky0 - pad, 0), min(ky1 + pad, h), max(kx0 - pad, 0), min(kx1 + pad, w)
        sr = self.run(self.lr[..., ry0:ry1, rx0:rx1])
        oy, ox = (ky0 - ry0) * s, (kx0 - rx0) * s
        kept = sr[..., oy : oy + (ky1 - ky0) * s, ox : ox + (kx1 - kx0) * s]
        _fade(kept, -2, 2 * core.top * s, 2 * core.bottom * s)  # only the margins: a tile core is mostly weight 1
        _fade(kept, -1, 2 * core.left * s, 2 * core.right * s)
        self.canvas[..., ky0 * s : ky1 * s, kx0 * s : kx1 * s] += kept.to(self.canvas.device)


@torch.no_grad()
def self_ensemble(model: Callable[[Tensor], Tensor | tuple], lr: Tensor) -> Tensor:
    """Mean of the SR of the 8 flips/rotations of `lr`, each transformed back (the "+" rows, e.g. GPSR+)."""
    outputs = []
    for transpose in (False, True):
        for flips in ((), (-1,), (-2,), (-2, -1)):
            x = lr.transpose(-1, -2) if transpose else lr
            x = x.flip(flips) if flips else x
            y = sr_image(model(x))
            y = y.flip(flips) if flips else y
            outputs.append(y.transpose(-1, -2) if transpose else y)
    return torch.stack(outputs).mean(0)
