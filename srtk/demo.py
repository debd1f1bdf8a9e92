"""`srtk demo`: the toolkit end to end on photographs bundled with scikit-image (no download).

Writes the samples as an HR benchmark folder, evaluates bicubic x4 on it under the papers' protocol (PSNR/SSIM on
Y, NIQE), makes their LR versions and upscales them (tiled), and renders gradient maps of HR and SR.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srtk.config import EvalConfig, UpscaleConfig
from srtk.data.datasets import make_lr
from srtk.data.io import list_images, read_image, write_image, write_json
from srtk.data.resize import modcrop
from srtk.evaluate import EvalResult, run_evaluation
from srtk.gradmap import gradmap_file
from srtk.infer import UpscaleReport, upscale_files
from srtk.progress import ProgressFn, no_progress

# Photographs scikit-image ships inside its wheel: structure (brick, rocket), texture (chelsea), faces, text.
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket", "brick", "camera")
DEMO_SCALE = 4
DEMO_TILE = 64  # small tiles, to show tiled inference on ordinary photos


@dataclass
class DemoResult:
    out_dir: Path
    evaluation: EvalResult
    upscaled: UpscaleReport
    gradient_maps: list[Path]
    result_file: Path


def write_samples(folder: Path) -> list[Path]:
    """Write the scikit-image samples as RGB PNGs (grayscale ones replicated)."""
    import skimage.data  # only the demo needs scikit-image's bundled photographs

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in SAMPLES:
        pixels = np.asarray(getattr(skimage.data, name)())
        img = torch.from_numpy(pixels).float() / 255
        img = img.unsqueeze(0).expand(3, -1, -1) if img.ndim == 2 else img[..., :3].permute(2, 0, 1)
        paths.append(write_image(folder / f"{name}.png", img))
    return paths


def run_demo(out_dir: Path, *, device: str = "auto", progress: ProgressFn = no_progress) -> DemoResult:
    hr_dir, lr_dir = out_dir / "hr", out_dir / "lr"
    write_samples(hr_dir)
    evaluation = run_evaluation(
        EvalConfig(
            model="bicubic",
            datasets=(str(hr_dir),),
            scale=DEMO_SCALE,
            metrics=("psnr", "ssim", "niqe"),
            device=device,
        ),
        progress=progress,
    )
    for path in list_images(hr_dir):
        hr = modcrop(read_image(path), DEMO_SCALE)
        write_image(lr_dir / path.name, make_lr(hr.unsqueeze(0), DEMO_SCALE)[0])
    upscaled = upscale_files(
        [lr_dir],
        out_dir / "sr",
        UpscaleConfig(model="bicubic", scale=DEMO_SCALE, tile=DEMO_TILE, device=device),
        progress=progress,
    )
    maps = [
        gradmap_file(hr_dir / "brick.png", out_dir / "gradmap" / "brick_hr.png"),
        gradmap_file(out_dir / "sr" / "brick.png", out_dir / "gradmap" / "brick_bicubic_x4.png"),
    ]
    result_file = write_json(out_dir / "evaluate.json", evaluation.as_dict())
    return DemoResult(out_dir, evaluation, upscaled, maps, result_file)
