"""`srtk demo`: the toolkit end to end on photographs bundled with scikit-image (no download, CPU-sized).

1. writes a training set and a held-out test set of photographs as folders of HR images;
2. trains a small EDSR from scratch with the `psnr` method (L1) on the training photographs, for about a minute;
3. compares bicubic, the model just trained and every model bundled with srtk on the test photographs with
   `srtk compare`'s core (papers' protocol: PSNR/SSIM on Y, NIQE): tables, perception-distortion plot, figures and
   the HTML report under OUT/compare;
4. upscales the test photographs' LR versions with bicubic, the best PSNR-oriented bundled model (else the model
   just trained) and the showcase perceptual one, into OUT/sr/<model>;
5. renders the gradient maps M(I) (paper 000 eq. 2) of HR, bicubic and those SR outputs of one photograph.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from srtk.config import CompareConfig, UpscaleConfig
from srtk.data.datasets import make_lr
from srtk.data.io import list_images, read_image, write_image, write_json
from srtk.data.resize import modcrop
from srtk.errors import SrtkError
from srtk.gradmap import gradmap_file
from srtk.infer import UpscaleReport, upscale_files
from srtk.models.bundled import bundled_cards
from srtk.models.checkpoint import ModelCard, read_card
from srtk.presets import PERCEPTUAL, PSNR_ORIENTED, SHOWCASE_PERCEPTUAL_METHOD, method_kind, resolve_train_config
from srtk.progress import ProgressFn, no_progress
from srtk.studies.compare import ComparisonResult, run_comparison
from srtk.version import __version__

# Photographs scikit-image ships inside its wheel. Test: structure (brick, rocket) and a classic (camera).
TRAIN_SAMPLES = ("astronaut", "coffee", "chelsea", "immunohistochemistry", "hubble_deep_field", "retina", "coins")
TEST_SAMPLES = ("rocket", "brick", "camera")
GRADMAP_SAMPLE = "brick"  # regular mortar lines: where blur and invented edges show best in M(I)
DEMO_SCALE = 4
METRICS = ("psnr_y", "ssim_y", "niqe")  # LPIPS needs AlexNet weights a fresh machine does not have
TRAINED_LABEL = "trained-now"
BICUBIC = "bicubic"
# The PSNR-oriented bundled model the demo upscales with, first present wins (else the model just trained).
PSNR_SHOWCASE = ("psnr-edsr", "psnr-rrdb")
# About a minute on an idle 2-core CPU (1500 iterations at ~25 it/s; ~17 it/s on one thread); about +0.9 dB mean
# PSNR-Y over bicubic on the test photographs.
DEMO_ITERATIONS = 1500
# A small EDSR (32 features, 4 blocks) trained like the psnr preset but shorter: 8 patches of 24x24 LR, L1, cosine
# decay from 1e-3. Many small batches beat fewer large ones in a minute (16 x 32x32 for a third of the iterations
# gained 0.25 dB less), and a short run affords a larger step than the paper's 2e-4 over 1e6 iterations (5e-4:
# 0.2 dB less; 2e-3: no better).
DEMO_OVERRIDES: dict[str, Any] = {
    "model.backbone": "edsr-baseline",
    "model.backbone_options": {"num_features": 32, "num_blocks": 4},
    "data.lr_patch_size": 24,
    "data.batch_size": 8,
    "data.num_workers": 0,
    "data.repeat": 64,
    "optim.learning_rate": 1e-3,
    "optim.schedule": "cosine",
    "optim.min_learning_rate": 1e-6,
    "optim.cosine_period": None,
    "checkpoint.log_every": 100,
}


@dataclass(frozen=True)
class DemoRow:
    """One model of the demo's comparison: mean metrics over the test photographs and the gain over bicubic."""

    label: str
    origin: str  # "bundled", "trained now" or "baseline"
    kind: str  # PSNR_ORIENTED, PERCEPTUAL, "interpolation" (bicubic) or "-" (unknown method)
    metrics: dict[str, float]
    psnr_gain: float  # dB of mean PSNR-Y over bicubic's

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.label,
            "origin": self.origin,
            "kind": self.kind,
            "metrics": self.metrics,
            "psnr_y_gain_db": self.psnr_gain,
        }


@dataclass
class DemoResult:
    out_dir: Path
    model: Path  # the model trained now (safetensors + card)
    training_seconds: float
    iterations: int
    comparison: ComparisonResult
    rows: list[DemoRow]  # best first: bundled PSNR-oriented, bundled perceptual, trained now, bicubic
    upscaled: dict[str, UpscaleReport]  # label -> its upscale of the test photographs (OUT/sr/<label>)
    gradient_maps: list[Path]
    report: Path  # OUT/compare/report/index.html
    result_file: Path  # OUT/demo.json
    next_commands: tuple[str, ...]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage and in total


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


def _relabelled(progress: ProgressFn, describe: Callable[[str], str]) -> ProgressFn:
    """`progress` with each task description rewritten, so that every stage of the demo gets its own bar."""

    def report(description: str, done: int, total: int, detail: str = "") -> None:
        progress(describe(description), done, total, detail)

    return report


def _kind(card: ModelCard | None) -> str:
    if card is None:
        return "interpolation"
    return method_kind(card.method) or "-"


def demo_rows(means: Mapping[str, Mapping[str, float]], cards: Mapping[str, ModelCard | None]) -> list[DemoRow]:
    """The comparison's rows for the final screen, in the order a newcomer reads them: bundled PSNR-oriented models
    by PSNR-Y, bundled perceptual ones by NIQE, other bundled ones, the model trained now, bicubic last.

    `cards`: label -> model card (None for bicubic); every label of `means` but bicubic and TRAINED_LABEL is bundled.
    """
    reference = means[BICUBIC]["psnr_y"]
    rows = []
    for label, metrics in means.items():
        origin = "baseline" if label == BICUBIC else "trained now" if label == TRAINED_LABEL else "bundled"
        gain = metrics["psnr_y"] - reference
        rows.append(DemoRow(label, origin, _kind(cards.get(label)), dict(metrics), gain))

    def order(row: DemoRow) -> tuple[int, float]:
        if row.origin == "bundled":
            if row.kind == PSNR_ORIENTED:
                return (0, -row.metrics["psnr_y"])
            if row.kind == PERCEPTUAL:
                return (1, row.metrics["niqe"])
            return (2, -row.metrics["psnr_y"])
        return (3 if row.origin == "trained now" else 4, 0.0)

    return sorted(rows, key=order)


def showcase_models(rows: list[DemoRow], trained: Path) -> dict[str, str]:
    """label -> model spec the demo upscales with: bicubic, the first bundled model of PSNR_SHOWCASE (else the model
    trained now), and the bundled model of SHOWCASE_PERCEPTUAL_METHOD (else the perceptual one with the lowest
    NIQE), when there is one."""
    bundled = {row.label: row for row in rows if row.origin == "bundled"}
    chosen = {BICUBIC: BICUBIC}
    psnr_model = next((name for name in PSNR_SHOWCASE if name in bundled), None)
    if psnr_model is None:
        chosen[TRAINED_LABEL] = str(trained)
    else:
        chosen[psnr_model] = psnr_model
    perceptual = [row.label for row in rows if row.origin == "bundled" and row.kind == PERCEPTUAL]  # by NIQE
    if SHOWCASE_PERCEPTUAL_METHOD in bundled:
        chosen[SHOWCASE_PERCEPTUAL_METHOD] = SHOWCASE_PERCEPTUAL_METHOD
    elif perceptual:
        chosen[perceptual[0]] = perceptual[0]
    return chosen


def _train(out_dir: Path, train_dir: Path, iterations: int, device: str, progress: ProgressFn) -> tuple[Path, float]:
    """Train the demo model from scratch: (its weights, training wall time in seconds)."""
    from srtk.train.engine import run_training  # training pulls in the loss library: only when asked

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
    if training.status == "interrupted":  # Ctrl-C: the CLI's one line and exit status 130
        raise KeyboardInterrupt
    if training.model is None:
        raise SrtkError(f"training ended {training.status} without a model")
    return training.model, training.wall_time_s


def run_demo(
    out_dir: Path, *, iterations: int = DEMO_ITERATIONS, device: str = "auto", progress: ProgressFn = no_progress
) -> DemoResult:
    """Every stage of the demo into `out_dir` (photographs, run/, compare/, sr/, gradmap/, demo.json)."""
    started = time.time()
    seconds: dict[str, float] = {}
    train_dir, test_dir, lr_dir = out_dir / "train", out_dir / "test", out_dir / "test_lr"
    write_samples(train_dir, TRAIN_SAMPLES)
    write_samples(test_dir, TEST_SAMPLES)
    for path in list_images(test_dir):
        hr = modcrop(read_image(path), DEMO_SCALE)
        write_image(lr_dir / path.name, make_lr(hr.unsqueeze(0), DEMO_SCALE)[0])
    seconds["photographs"] = time.time() - started

    model, seconds["training"] = _train(out_dir, train_dir, iterations, device, progress)

    stage = time.time()
    cards: dict[str, ModelCard | None] = {BICUBIC: None, TRAINED_LABEL: read_card(model)}
    bundled = {name: card for name, card in bundled_cards().items() if card.scale == DEMO_SCALE}
    cards.update(bundled)
    cfg = CompareConfig(
        models=(BICUBIC, f"{TRAINED_LABEL}={model}", *bundled),
        datasets=(str(test_dir),),
        out=out_dir / "compare",
        scale=DEMO_SCALE,
        metrics=METRICS,
        device=device,
    )
    comparing = _relabelled(progress, lambda task: f"compare {len(cards)} models: {task}")
    comparison = run_comparison(cfg, progress=comparing)
    rows = demo_rows(next(iter(comparison.means().values())), cards)
    seconds["comparison"] = time.time() - stage

    stage = time.time()
    showcase = showcase_models(rows, model)
    upscaled = {}
    for label, spec in showcase.items():
        # Eager PyTorch (accelerate=False): the demo writes nothing outside its folder, and the ONNX export that
        # would be cached in the user's cache costs more than it saves on three photographs.
        upscale = UpscaleConfig(model=spec, scale=DEMO_SCALE, device=device, accelerate=False)
        report = upscale_files(
            [lr_dir], out_dir / "sr" / label, upscale, progress=_relabelled(progress, lambda _, t=label: f"upscale {t}")
        )
        if report.interrupted:
            raise KeyboardInterrupt
        for source, reason in report.failed.items():
            raise SrtkError(f"{source}: upscaling with {label} failed: {reason}")
        upscaled[label] = report
    name = f"{GRADMAP_SAMPLE}.png"
    maps = [gradmap_file(test_dir / name, out_dir / "gradmap" / f"{GRADMAP_SAMPLE}_hr.png")]
    for label in showcase:
        maps.append(gradmap_file(out_dir / "sr" / label / name, out_dir / "gradmap" / f"{GRADMAP_SAMPLE}_{label}.png"))
    seconds["upscale_and_gradient_maps"] = time.time() - stage

    example = next((label for label in reversed(showcase) if label in bundled), str(model))
    next_commands = (f"srtk upscale photo.png --model {example} -o out/", "srtk models")
    seconds["total"] = time.time() - started
    summary = {
        "srtk_version": __version__,
        "scale": DEMO_SCALE,
        "test_photographs": [f"{name}.png" for name in TEST_SAMPLES],
        "training": {"model": str(model), "iterations": iterations, "wall_time_s": seconds["training"]},
        "models": [row.as_dict() for row in rows],
        "compare": {key: str(path) for key, path in comparison.files.items()},
        "upscaled": {label: str(out_dir / "sr" / label) for label in upscaled},
        "gradient_maps": [str(path) for path in maps],
        "seconds": {key: round(value, 1) for key, value in seconds.items()},
    }
    result_file = write_json(out_dir / "demo.json", summary)
    return DemoResult(
        out_dir=out_dir,
        model=model,
        training_seconds=seconds["training"],
        iterations=iterations,
        comparison=comparison,
        rows=rows,
        upscaled=upscaled,
        gradient_maps=maps,
        report=comparison.files["report"],
        result_file=result_file,
        next_commands=next_commands,
        seconds=seconds,
    )
