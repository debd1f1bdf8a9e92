"""Inference on image files: `srtk upscale` reads each image, runs it through srtk.tiling and writes the result.

Convention: RGB, NCHW, float in [0, 1]. A model maps LR (N, 3, h, w) to SR (N, 3, s*h, s*w), or to a NamedTuple
whose `sr` field is that image (the two-branch generators).
"""

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from srtk.config import UpscaleConfig
from srtk.data.io import list_images, read_image, write_image
from srtk.errors import SrtkError
from srtk.models.registry import load_model
from srtk.progress import ProgressFn, no_progress
from srtk.runtime import check_precision, pick_device
from srtk.tiling import self_ensemble, upscale_tiled


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
