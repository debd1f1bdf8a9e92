"""Inference: tiled upscaling with overlap (bounded memory, same result as untiled), and self-ensemble.

Convention: RGB, NCHW, float in [0, 1]. A model maps LR (N, 3, h, w) to SR (N, 3, s*h, s*w), or to a NamedTuple
whose `sr` field is that image (the two-branch generators).
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from srtk.config import UpscaleConfig
from srtk.data.io import list_images, read_image, write_image
from srtk.errors import SrtkError
from srtk.models.registry import load_model
from srtk.progress import ProgressFn, no_progress
from srtk.runtime import autocast_context, check_precision, pick_device, sr_image


def _tile_starts(length: int, tile: int) -> Iterator[int]:
    yield from range(0, length, tile)


@torch.no_grad()
def upscale_tiled(
    model: Callable[[Tensor], Tensor | tuple],
    lr: Tensor,
    *,
    scale: int,
    tile: int | None = None,
    overlap: int = 16,
    precision: str = "fp32",
    on_tile: Callable[[int, int], None] | None = None,
) -> Tensor:
    """SR of (N, 3, h, w) `lr`, in LR tiles of `tile` pixels each padded by `overlap` of real context.

    Each tile's padded region runs through the model and only its core is kept, so as long as `overlap` covers the
    model's receptive field the result equals the untiled one; memory is bounded by one padded tile.
    """
    if tile is None or tile <= 0 or (lr.shape[-2] <= tile and lr.shape[-1] <= tile):
        with autocast_context(lr.device, precision):
            return sr_image(model(lr)).float()
    if overlap < 0:
        raise SrtkError(f"tile overlap must be >= 0, not {overlap}")
    n, c, h, w = lr.shape
    out = torch.empty(n, c, h * scale, w * scale, dtype=torch.float32, device=lr.device)
    starts = [(y, x) for y in _tile_starts(h, tile) for x in _tile_starts(w, tile)]
    for done, (y0, x0) in enumerate(starts, start=1):
        y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
        py0, px0 = max(y0 - overlap, 0), max(x0 - overlap, 0)
        py1, px1 = min(y1 + overlap, h), min(x1 + overlap, w)
        with autocast_context(lr.device, precision):
            sr_tile = sr_image(model(lr[..., py0:py1, px0:px1])).float()
        oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
        out[..., y0 * scale : y1 * scale, x0 * scale : x1 * scale] = sr_tile[
            ..., oy : oy + (y1 - y0) * scale, ox : ox + (x1 - x0) * scale
        ]
        if on_tile is not None:
            on_tile(done, len(starts))
    return out


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


@dataclass
class UpscaleReport:
    written: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def collect_inputs(inputs: list[Path]) -> tuple[list[Path], dict[str, str]]:
    """Files as given and the images directly inside given folders; missing paths are reported, not fatal."""
    files: list[Path] = []
    missing: dict[str, str] = {}
    for item in inputs:
        if item.is_dir():
            found = list_images(item)
            if not found:
                missing[str(item)] = f"{item}: folder holds no images"
            files.extend(found)
        elif item.exists():
            files.append(item)
        else:
            missing[str(item)] = f"{item}: no such file or folder"
    return files, missing


def output_path(image: Path, out_dir: Path, suffix: str) -> Path:
    return out_dir / f"{image.stem}{suffix}"


def upscale_files(
    inputs: list[Path], out_dir: Path, cfg: UpscaleConfig, *, progress: ProgressFn = no_progress
) -> UpscaleReport:
    """Upscale every input image into `out_dir`; a bad file is reported and the others still processed."""
    files, report_failed = collect_inputs(inputs)
    report = UpscaleReport(failed=report_failed)
    device = pick_device(cfg.device)
    check_precision(cfg.precision, device)  # once, not as a failure of every file
    model = load_model(cfg.model, scale=cfg.scale).to(device).eval()
    scale = int(model.scale)  # a checkpoint knows its own factor
    run = partial(upscale_tiled, scale=scale, tile=cfg.tile, overlap=cfg.tile_overlap, precision=cfg.precision)
    for done, path in enumerate(files, start=1):
        progress("upscale", done - 1, len(files))
        try:
            lr = read_image(path).unsqueeze(0).to(device)
            sr = self_ensemble(partial(run, model), lr) if cfg.self_ensemble else run(model, lr)
            report.written.append(write_image(output_path(path, out_dir, cfg.suffix), sr, bit_depth=cfg.bit_depth))
        except SrtkError as error:
            report.failed[str(path)] = str(error)
        progress("upscale", done, len(files))
    return report
