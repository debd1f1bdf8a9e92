"""`srtk evaluate`: a model on benchmark datasets under the papers' protocol, per image and averaged.

Protocol (shared/reference/bicubic_x4.json): HR modcropped to the scale, LR = MATLAB bicubic downscale rounded to
8 bits, SR rounded to 8 bits, PSNR/SSIM on MATLAB Y with a border of `scale` pixels removed, NIQE on the SR Y with
the same border, LPIPS on RGB.
"""

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from srtk.config import EvalConfig
from srtk.data.datasets import BENCHMARKS, EvalPair, evaluation_pairs, resolve_dataset
from srtk.data.io import list_images, quantize
from srtk.errors import ConfigError
from srtk.metrics.lpips import LPIPS, build_lpips, lpips_distance
from srtk.metrics.niqe import niqe
from srtk.metrics.psnr_ssim import psnr_rgb, psnr_y, ssim_y
from srtk.models.registry import load_model
from srtk.progress import ProgressFn, no_progress
from srtk.runtime import check_precision, pick_device
from srtk.tiling import self_ensemble, upscale_tiled
from srtk.version import __version__

PROTOCOL = (
    "x{scale}: HR modcropped to a multiple of {scale}; LR = MATLAB bicubic imresize (antialiased) by 1/{scale}, "
    "rounded to uint8; SR rounded to uint8; PSNR/SSIM on Y of MATLAB rgb2ycbcr with a {scale}-pixel border cropped "
    "(SSIM: 11x11 Gaussian, sigma 1.5); NIQE on SR Y (rounded), same border, 96x96 blocks; LPIPS on RGB; "
    "means over images"
)


@dataclass
class DatasetResult:
    name: str
    folder: str
    images: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    expected_images: int | None = None  # a registry benchmark's published size; None for any other folder

    @property
    def incomplete(self) -> str:
        """Why these means are not the benchmark's ('' when every image of a registry benchmark was scored)."""
        if self.expected_images is None or len(self.images) == self.expected_images:
            return ""
        return (
            f"{self.folder}: {len(self.images)} of {self.name}'s {self.expected_images} images were scored; "
            "its means are not comparable with published ones"
        )

    def mean(self) -> dict[str, float]:
        keys = next(iter(self.images.values()), {}).keys()
        return {k: sum(img[k] for img in self.images.values()) / len(self.images) for k in keys}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"folder": self.folder, "mean": self.mean(), "images": self.images}
        if self.failed:
            out["failed"] = self.failed
        if self.incomplete:
            out["incomplete"] = {"scored": len(self.images), "expected": self.expected_images}
        return out


@dataclass
class EvalResult:
    config: EvalConfig
    datasets: dict[str, DatasetResult]

    @property
    def num_failed(self) -> int:
        return sum(len(d.failed) for d in self.datasets.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "scale": self.config.scale,
            "protocol": PROTOCOL.format(scale=self.config.scale),
            "datasets": {name: result.as_dict() for name, result in self.datasets.items()},
            "config": self.config.as_dict(),
            "srtk_version": __version__,
        }


def super_resolve(model: nn.Module, lr: Tensor, cfg: EvalConfig) -> Tensor:
    """SR of a (1, 3, h, w) LR batch as the protocol wants it: clamped and rounded to 8-bit levels."""
    upscale = partial(
        upscale_tiled, model, scale=cfg.scale, tile=cfg.tile, overlap=cfg.tile_overlap, precision=cfg.precision
    )
    sr = self_ensemble(upscale, lr) if cfg.self_ensemble else upscale(lr)
    return quantize(sr.float())


class ImageScorer:
    """The papers' protocol for one image: SR (tiled / self-ensemble as configured), rounded to 8 bits, metrics.

    The one implementation behind `srtk evaluate` and training validation. Holds the LPIPS network when
    `cfg.metrics` asks for it; the model is passed per call (training scores a changing generator or its EMA)
    and must be on `device`, in eval mode.
    """

    def __init__(self, cfg: EvalConfig, device: torch.device) -> None:
        check_precision(cfg.precision, device)  # fail before the first image, not inside it
        self.cfg, self.device = cfg, device
        self.keys, self.crop = cfg.result_keys, cfg.scale
        self.lpips: LPIPS | None = None
        if "lpips" in self.keys:
            self.lpips = build_lpips(cfg.lpips_net, allow_random_backbone=cfg.allow_random_lpips).to(device)

    @torch.no_grad()
    def __call__(self, model: nn.Module, pair: EvalPair) -> dict[str, float]:
        """{key: value} of `model` on one HR/LR pair for every key of `cfg.result_keys` (psnr_y, ssim_y, ...)."""
        return self.score(super_resolve(model, pair.lr.unsqueeze(0).to(self.device), self.cfg), pair.hr)

    @torch.no_grad()
    def score(self, sr: Tensor, hr: Tensor) -> dict[str, float]:
        """The metrics of an SR made by `super_resolve` ((1, 3, H, W), 8-bit levels) against its (3, H, W) HR.

        Split from `__call__` for `srtk compare`, which scores SR images it cached from an earlier run.
        """
        sr, hr = sr.to(self.device), hr.unsqueeze(0).to(self.device)
        values: dict[str, Tensor] = {}
        if "psnr_y" in self.keys:
            values["psnr_y"] = psnr_y(sr, hr, crop=self.crop)
        if "psnr_rgb" in self.keys:
            values["psnr_rgb"] = psnr_rgb(sr, hr, crop=self.crop)
        if "ssim_y" in self.keys:
            values["ssim_y"] = ssim_y(sr, hr, crop=self.crop)
        if "niqe" in self.keys:
            values["niqe"] = niqe(sr, crop=self.crop)
        if self.lpips is not None:
            values["lpips"] = lpips_distance(self.lpips, sr, hr)
        return {k: float(v[0]) for k, v in values.items()}


@torch.no_grad()
def run_evaluation(cfg: EvalConfig, *, progress: ProgressFn = no_progress) -> EvalResult:
    """Evaluate cfg.model on every dataset of cfg.datasets; unreadable images are recorded, not fatal."""
    folders = {name: resolve_dataset(name, cfg.data_root) for name in cfg.datasets}  # fail before any work
    device = pick_device(cfg.device)
    score = ImageScorer(cfg, device)
    model = load_model(cfg.model, scale=cfg.scale).to(device).eval()
    if int(model.scale) != cfg.scale:
        raise ConfigError(f"{cfg.model}: the model upscales x{model.scale}, but --scale is {cfg.scale}")
    results: dict[str, DatasetResult] = {}
    for name, folder in folders.items():
        known = BENCHMARKS.get(name.lower())
        key = known.folder if known else folder.name
        result = DatasetResult(name=key, folder=str(folder), expected_images=known.num_images if known else None)
        total = len(list_images(folder))
        label = f"{key} x{cfg.scale}"
        progress(label, 0, total)
        for done, item in enumerate(evaluation_pairs(folder, cfg.scale), start=1):
            if isinstance(item, tuple):
                result.failed[item[0]] = str(item[1])
            else:
                result.images[item.name] = score(model, item)
            progress(label, done, total)
        results[key] = result
    return EvalResult(config=cfg, datasets=results)
