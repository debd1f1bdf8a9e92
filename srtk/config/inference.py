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


@dataclass(frozen=True)
class EvalConfig:
    """`srtk evaluate`: which model, on which benchmarks, under the papers' protocol."""

    model: str = "bicubic"  # registry name or checkpoint path
    datasets: tuple[str, ...] = ("set5", "set14")
    scale: int = 4  # every paper's main tables are x4
    metrics: tuple[str, ...] = ("psnr", "ssim")
    data_root: Path | None = None
    device: str = "auto"
    precision: str = "fp32"
    tile: int | None = None  # LR tile size for large images; None = whole image
    tile_overlap: int = 16
    self_ensemble: bool = False  # the "+" rows (x8 geometric ensemble)
    lpips_net: str = "alex"
    allow_random_lpips: bool = False  # tests only: LPIPS with an untrained backbone
    result_keys: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
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
    """`srtk upscale`: a model applied to image files."""

    model: str = "bicubic"
    scale: int = 4
    tile: int | None = None
    tile_overlap: int = 16
    device: str = "auto"
    precision: str = "fp32"
    self_ensemble: bool = False
    suffix: str = ".png"
    bit_depth: int = 8

    def __post_init__(self) -> None:
        if self.tile is not None and self.tile <= 0:
            raise ConfigError(f"--tile must be positive, not {self.tile}")
        if self.tile_overlap < 0:
            raise ConfigError(f"--tile-overlap must be >= 0, not {self.tile_overlap}")
        if self.bit_depth not in (8, 16):
            raise ConfigError(f"--bit-depth must be 8 or 16, not {self.bit_depth}")
