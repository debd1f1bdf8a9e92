"""Running a model over an image: tiled upscaling with overlap (bounded memory, same result as untiled) and
self-ensemble. The one path from an LR tensor to its SR tensor for `srtk upscale`, `srtk evaluate` and validation.

Convention: RGB, NCHW, float in [0, 1]. A model maps LR (N, 3, h, w) to SR (N, 3, s*h, s*w), or to a NamedTuple
whose `sr` field is that image (the two-branch generators).
"""

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from srtk.errors import SrtkError
from srtk.runtime import autocast_context, sr_image


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
