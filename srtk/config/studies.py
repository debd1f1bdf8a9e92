"""`srtk compare` configuration: several models under the one protocol of `srtk evaluate`, and how the results are
shown (crops, figures, report). Resolved like every job: defaults < file < flags < `--set` (srtk.config.resolve)."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srtk.config.inference import METRIC_KEYS, EvalConfig
from srtk.config.resolve import as_json_dict
from srtk.errors import ConfigError

# The direction of every metric key the comparison ranks: PSNR/SSIM measure fidelity (higher is better), NIQE and
# LPIPS measure perceptual distance (lower is better), as the papers' tables mark them.
HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr_y": True,
    "psnr_rgb": True,
    "ssim_y": True,
    "niqe": False,
    "lpips": False,
}


@dataclass(frozen=True)
class CompareConfig:
    """`srtk compare`: models (registry names or checkpoints, optionally LABEL=PATH) on benchmarks, side by side."""

    models: tuple[str, ...] = ("bicubic",)
    datasets: tuple[str, ...] = ("set5",)
    out: Path = Path("compare")
    scale: int = 4
    metrics: tuple[str, ...] = ("psnr_y", "ssim_y", "niqe", "lpips")  # lpips left out where its trunk is absent
    data_root: Path | None = None
    device: str = "auto"
    precision: str = "fp32"
    tile: int | None = None
    tile_overlap: int = 16
    self_ensemble: bool = False
    lpips_net: str = "alex"
    allow_random_lpips: bool = False  # tests only: LPIPS with an untrained backbone
    cache: Path | None = None  # SR outputs by model hash and image; None = OUT/cache
    rank_by: str = "psnr_y"  # the table's row order; every metric still gets its best / second best marks
    crops: int = 2  # crops per image where the models' gradient maps disagree most
    crop_size: int = 96  # HR pixels (a multiple of the scale, so that the LR crop is exact)
    report_images: int | None = None  # images per dataset in the report and figures; None = all
    figures: bool = True  # PNG figure grids (crops + gradient maps) for slides
    result_keys: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("no model given: --models bicubic,PATH,...")
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"a model is given twice in --models {','.join(self.models)}")
        unknown = [m for m in self.metrics if m not in METRIC_KEYS]
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown)}; choose from: {', '.join(METRIC_KEYS)}")
        keys = tuple(dict.fromkeys(k for m in self.metrics for k in METRIC_KEYS[m]))
        if self.rank_by not in keys:
            raise ConfigError(f"--rank-by {self.rank_by!r} is not among the metric keys: {', '.join(keys)}")
        if self.crops < 0:
            raise ConfigError(f"--crops must be >= 0, not {self.crops}")
        if self.crop_size <= 0 or self.crop_size % self.scale:
            raise ConfigError(
                f"--crop-size must be a positive multiple of the scale {self.scale}, not {self.crop_size}"
            )
        if self.report_images is not None and self.report_images <= 0:
            raise ConfigError(f"--report-images must be positive, not {self.report_images}")
        self.eval_config()  # scale, datasets, tiling: checked by the protocol's own config, before any work
        object.__setattr__(self, "result_keys", keys)

    @property
    def cache_dir(self) -> Path:
        return self.cache if self.cache is not None else self.out / "cache"

    def eval_config(self, model: str = "bicubic", *, metrics: tuple[str, ...] | None = None) -> EvalConfig:
        """The `srtk evaluate` config of one model under this comparison's protocol."""
        return EvalConfig(
            model=model,
            datasets=self.datasets,
            scale=self.scale,
            metrics=self.metrics if metrics is None else metrics,
            data_root=self.data_root,
            device=self.device,
            precision=self.precision,
            tile=self.tile,
            tile_overlap=self.tile_overlap,
            self_ensemble=self.self_ensemble,
            lpips_net=self.lpips_net,
            allow_random_lpips=self.allow_random_lpips,
        )

    def as_dict(self) -> dict[str, Any]:
        return as_json_dict(self)
