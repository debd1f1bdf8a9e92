"""`srtk demo`: the toolkit end to end on photographs bundled with scikit-image (no download, CPU-sized).

1. writes a training set and a held-out test set of photographs as folders of HR images;
2. trains a small EDSR with the `psnr` method (L1) on the training photographs, for a few hundred iterations;
3. evaluates bicubic and the trained model on the test photographs under the papers' protocol (PSNR/SSIM on Y,
   NIQE) and writes the comparison;
4. upscales the test photographs' LR versions with the trained model (tiled inference);
5. renders the gradient maps M(I) of HR, bicubic and trained SR of one image (paper 000 eq. 2).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srtk.config import EvalConfig, UpscaleConfig
from srtk.data.datasets import make_lr
from srtk.data.io import list_images, read_image, write_image, write_json
from srtk.data.resize import modcrop
from srtk.errors import SrtkError
from srtk.evaluate import EvalResult, run_evaluation
from srtk.gradmap import gradmap_file
from srtk.infer import UpscaleReport, upscale_files
from srtk.progress import ProgressFn, no_progress
from srtk.version import __version__

# Photographs scikit-image ships inside its wheel. Test: structure (brick, rocket) and a classic (camera).
TRAIN_SAMPLES = ("astronaut", "coffee", "chelsea", "immunohistochemistry", "hubble_deep_field", "retina", "coins")
TEST_SAMPLES = ("rocket", "brick", "camera")
DEMO_SCALE = 4
DEMO_TILE = 64  # small LR tiles, to show tiled inference on ordinary photographs
DEMO_ITERATIONS = 400  # a few minutes on a laptop CPU; enough to beat bicubic on the test photographs
# A small EDSR (32 features, 4 blocks) trained like the psnr preset but shorter: 8 patches of 24x24 LR, L1,
# cosine decay from 5e-4 (a short run affords a larger step than the paper's 2e-4 over 1e6 iterations).
DEMO_OVERRIDES: dict[str, Any] = {
    "model.backbone": "edsr-baseline",
    "model.backbone_options": {"num_features": 32, "num_blocks": 4},
    "data.lr_patch_size": 24,
    "data.batch_size": 8,
    "data.num_workers": 0,
    "data.repeat": 64,
    "optim.learning_rate": 5e-4,
    "optim.schedule": "cosine",
    "optim.min_learning_rate": 1e-6,
    "optim.cosine_period": None,
    "checkpoint.log_every": 50,
}


@dataclass
class DemoResult:
    out_dir: Path
    bicubic: EvalResult
    trained: EvalResult
    model: Path
    upscaled: UpscaleReport
    gradient_maps: list[Path]
    result_file: Path


def write_samples(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Write scikit-image samples as RGB PNGs (grayscale ones replicated)."""
    import skimage.data  # only the demo needs scikit-image's bundled photographs

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        pixels = np.asarray(getattr(skimage.data, name)())
        img = torch.from_numpy(pixels).float() / 255
        img = img.unsqueeze(0).expand(3, -1, -1) if img.ndim == 2 else img[..., :3].permute(2, 0, 1)
        paths.append(write_image(folder / f"{name}.png", img))
    return paths


def _evaluate(model: str, folder: Path, device: str, progress: ProgressFn) -> EvalResult:
    cfg = EvalConfig(
        model=model, datasets=(str(folder),), scale=DEMO_SCALE, metrics=("psnr", "ssim", "niqe"), device=device
    )
    return run_evaluation(cfg, progress=progress)


def run_demo(
    out_dir: Path, *, iterations: int = DEMO_ITERATIONS, device: str = "auto", progress: ProgressFn = no_progress
) -> DemoResult:
    from srtk.presets import resolve_train_config  # training pulls in the loss library: only when asked
    from srtk.train.engine import run_training

    train_dir, test_dir, lr_dir = out_dir / "train", out_dir / "test", out_dir / "test_lr"
    write_samples(train_dir, TRAIN_SAMPLES)
    write_samples(test_dir, TEST_SAMPLES)
    cfg = resolve_train_config(
        "psnr",
        overrides={
            **DEMO_OVERRIDES,
            "data.train": [str(train_dir)],
            "data.scale": DEMO_SCALE,
            "optim.iterations": iterations,
            "checkpoint.out_dir": str(out_dir / "run"),
            "checkpoint.overwrite": True,  # the demo's own folder: running it again replaces its run
            "checkpoint.every": iterations,
            "checkpoint.validate_every": iterations,
            "runtime.device": device,
        },
    )
    training = run_training(cfg, progress=progress)
    if training.model is None:
        raise SrtkError(f"training ended {training.status} without a model")
    bicubic = _evaluate("bicubic", test_dir, device, progress)
    trained = _evaluate(str(training.model), test_dir, device, progress)
    for path in list_images(test_dir):
        hr = modcrop(read_image(path), DEMO_SCALE)
        write_image(lr_dir / path.name, make_lr(hr.unsqueeze(0), DEMO_SCALE)[0])
    upscaled = upscale_files(
        [lr_dir],
        out_dir / "sr",
        UpscaleConfig(model=str(training.model), tile=DEMO_TILE, device=device),
        progress=progress,
    )
    bicubic_sr = upscale_files(
        [lr_dir / "brick.png"], out_dir / "sr_bicubic", UpscaleConfig(model="bicubic", scale=DEMO_SCALE, device=device)
    )
    maps = [
        gradmap_file(test_dir / "brick.png", out_dir / "gradmap" / "brick_hr.png"),
        gradmap_file(bicubic_sr.written[0], out_dir / "gradmap" / "brick_bicubic.png"),
        gradmap_file(out_dir / "sr" / "brick.png", out_dir / "gradmap" / "brick_trained.png"),
    ]
    comparison = {
        "srtk_version": __version__,
        "scale": DEMO_SCALE,
        "training": training.as_dict(),
        "bicubic": bicubic.as_dict(),
        "trained": trained.as_dict(),
    }
    result_file = write_json(out_dir / "compare.json", comparison)
    return DemoResult(out_dir, bicubic, trained, training.model, upscaled, maps, result_file)
