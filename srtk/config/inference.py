"""`srtk evaluate` and `srtk upscale` configuration: frozen, typed dataclasses, resolved like training's (defaults <
file < flags < `--set`, srtk.config.resolve)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srtk.config.resolve import as_json_dict
from srtk.errors import ConfigError

# What `--metrics` accepts, and the result keys each name produces.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "psnr": ("psnr_y", "psnr_rgb"),
    "psnr_y": ("psnr_y",),
    "psnr_rgb": ("psnr_rgb",),
    "ssim": ("ssim_y",),
    "ssim_y": ("ssim_y",),
    "niqe": ("niqe",),
    "lpips": ("lpips",),
}


ALPHA_METHODS = ("bicubic", "model")
MAX_OUTSCALE = 64.0  # beyond any model's factor: a larger value is a typo, and its output would not fit memory


def check_tiling(tile: int | str | None, tile_overlap: int | None) -> None:
    """The one check of tiling options, for every job that tiles (evaluate, upscale): a tile is a positive size,
    'auto' or none; an overlap is >= 0 or none (the model's receptive field)."""
    if isinstance(tile, str) and tile != "auto" or isinstance(tile, int) and tile <= 0:
        raise ConfigError(f"--tile must be a positive size, 'auto' or none, not {tile!r}")
    if tile_overlap is not None and tile_overlap < 0:
        raise ConfigError(f"--tile-overlap must be >= 0, not {tile_overlap}")


@dataclass(frozen=True)
class EvalConfig:
    """`srtk evaluate`: which model, on which benchmarks, under the papers' protocol."""

    model: str = "bicubic"  # registry name or checkpoint path
    datasets: tuple[str, ...] = ("set5", "set14")
    scale: int = 4  # every paper's main tables are x4
    metrics: tuple[str, ...] = ("psnr", "ssim")
    data_root: Path | None = None
    device: str = "auto"
    precision: str = "auto"  # fp32 on CPU, bf16 on GPUs that have it (srtk.runtime.resolve_precision)
    tile: int | str | None = "auto"  # LR tile size; "auto": the largest that fits free memory; None: whole image
    tile_overlap: int | None = None  # LR context per tile; None: the model's receptive field (srtk.tiling)
    self_ensemble: bool = False  # the "+" rows (x8 geometric ensemble)
    lpips_net: str = "alex"
    allow_random_lpips: bool = False  # tests only: LPIPS with an untrained backbone
    result_keys: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.tile_overlap)
        unknown = [m for m in self.metrics if m not in METRIC_KEYS]
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from: {', '.join(METRIC_KEYS)}")
        if self.scale not in (2, 3, 4, 8):
            raise ConfigError(f"scale must be 2, 3, 4 or 8, not {self.scale}")
        if not self.datasets:
            raise ConfigError("no dataset given")
        keys = dict.fromkeys(k for m in self.metrics for k in METRIC_KEYS[m])
        object.__setattr__(self, "result_keys", tuple(keys))

    def as_dict(self) -> dict[str, Any]:
        return as_json_dict(self)


@dataclass(frozen=True)
class UpscaleConfig:
    """`srtk upscale`: a model applied to image files, each written back in its own mode (srtk.infer)."""

    model: str = "bicubic"
    scale: int | None = None  # None: a checkpoint's own factor, 4 for bicubic; a checkpoint's must match
    outscale: float | None = None  # final size / input size; None = the model's scale (then MATLAB bicubic)
    tile: int | str | None = "auto"  # LR tile size; "auto": the largest that fits free memory; None: whole image
    tile_overlap: int | None = None  # LR context per tile; None: the model's receptive field (srtk.tiling)
    device: str = "auto"
    precision: str = "auto"  # fp32 on CPU, bf16 on GPUs that have it (srtk.runtime.resolve_precision)
    self_ensemble: bool = False
    suffix: str = ".png"  # the output format; "webp" is read as ".webp"
    bit_depth: int | None = None  # None: the source's (16-bit stays 16-bit where the format holds it: .png)
    alpha: str = "bicubic"  # how alpha is upscaled: "bicubic" (MATLAB imresize) or "model"
    recursive: bool = False  # mirror subfolders of input folders
    skip_existing: bool = False  # an output already on disk is kept and its input not processed
    report: Path | None = None  # per-file JSON report (status, reason, seconds)
    # CPU: run the network as its ONNX export in onnxruntime (exported and checked once, then cached), 2-4x
    # faster than eager PyTorch within 1e-4 (benchmarks/bench_upscale.py); false: PyTorch itself
    accelerate: bool = True

    def __post_init__(self) -> None:
        check_tiling(self.tile, self.tile_overlap)
        if self.scale is not None and self.scale < 1:
            raise ConfigError(f"--scale must be a positive integer, not {self.scale}")
        if self.outscale is not None and not 0 < self.outscale <= MAX_OUTSCALE:
            raise ConfigError(f"--outscale must be in (0, {MAX_OUTSCALE}], not {self.outscale}")
        if self.bit_depth is not None and self.bit_depth not in (8, 16):
            raise ConfigError(f"--bit-depth must be 8 or 16, not {self.bit_depth}")
        if self.alpha not in ALPHA_METHODS:
            raise ConfigError(f"--alpha must be one of {', '.join(ALPHA_METHODS)}, not {self.alpha!r}")
        suffix = self.suffix.strip().lower()
        if suffix and not suffix.startswith("."):
            suffix = f".{suffix}"  # --suffix webp means .webp
        if len(suffix) < 2 or "/" in suffix or "\\" in suffix:
            raise ConfigError(f"--suffix must be a file extension such as .png, not {self.suffix!r}")
        object.__setattr__(self, "suffix", suffix)

    def as_dict(self) -> dict[str, Any]:
        return as_json_dict(self)
