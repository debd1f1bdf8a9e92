"""`srtk pretrain-nse --evaluate NSE`: how much local structure an extractor captures (paper 000 Appendix B.2,
Fig. 6, 14, 15).

For each pretext task a fresh head is fitted on the training images while the extractor under evaluation stays
fixed (a run of the one training engine with `pretext.freeze_extractor`), then measured on patches cut densely
from the test images: top-1 contrastive prediction among the positive and every non-overlapping negative on
200x200 patches (about 2,000 negatives), and jigsaw accuracy on 84x84 patches; anchors (and grids) are drawn at
random several times per patch and the accuracies averaged. Each accuracy is reported next to its chance level.
Convention: images RGB, NCHW, float in [0, 1].
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from srtk.config.train import TrainConfig
from srtk.data.datasets import resolve_dataset
from srtk.data.io import list_images, read_image, write_json
from srtk.errors import CheckpointError, SrtkError
from srtk.losses.pretext import PretextResult, contrastive_prediction_loss, jigsaw_loss
from srtk.models.checkpoint import ModelCard, load_srtk_checkpoint
from srtk.models.nse import PretextModel
from srtk.models.registry import build_model, load_network_with_card
from srtk.models.structure_extractors import NSE_ARCHITECTURES
from srtk.progress import ProgressFn, no_progress
from srtk.runtime import pick_device
from srtk.train.engine import run_training
from srtk.train.run_folder import FINAL_MODEL

EVAL_PATCH = {"contrastive": 200, "jigsaw": 84}  # Appendix B.2 / Fig. 6: the test patch of each task
EVALUATION_FILE = "evaluation.json"
EXTRACTOR_OPTIONS = ("in_channels", "num_features", "out_features")  # PretextModel kwargs that size F


@dataclass(frozen=True)
class NSEEvaluation:
    """What `--evaluate` does: which NSE, the head re-fitting run, the test patches."""

    nse: Path
    out_dir: Path
    train: tuple[str, ...] = ("div2k",)
    data_root: Path | None = None
    test: str = "set14"
    sampling: str | None = None  # contrastive layout of P; None: the NSE's own (h for a jigsaw NSE)
    repeats: int = 8  # random anchors (or grids) per patch, averaged
    anchors_per_patch: int = 16
    device: str = "auto"
    seed: int = 0


def test_patches(folder: Path, size: int) -> list[Tensor]:
    """Non-overlapping size x size patches covering each test image (the dense sampling of Appendix B.2)."""
    patches = []
    for path in list_images(folder):
        image = read_image(path)
        height, width = image.shape[-2:]
        for top in range(0, height - size + 1, size):
            for left in range(0, width - size + 1, size):
                patches.append(image[:, top : top + size, left : left + size])
    if not patches:
        raise SrtkError(f"{folder}: no test image is at least {size}x{size} pixels")
    return patches


@torch.no_grad()
def measure(model: PretextModel, patches: list[Tensor], *, repeats: int, per_patch: int, device: torch.device) -> dict:
    """Mean top-1 accuracy of `model`'s head over `repeats` random draws of anchors on every patch."""
    model.eval().to(device)
    correct = chance = 0.0
    count = 0
    for start in range(0, len(patches), 16):
        batch = torch.stack(patches[start : start + 16]).to(device)
        features = model(batch)
        for _ in range(repeats):
            if model.task == "contrastive":
                result: PretextResult = contrastive_prediction_loss(
                    features, model.head, model.offsets, model.separation, targets_per_image=per_patch
                )
            else:
                result = jigsaw_loss(features, model.head, model.separation, grids_per_image=per_patch)
            weight = len(batch) * per_patch
            correct += float(result.accuracy) * weight
            chance += result.chance * weight
            count += weight
    return {"top1": correct / count, "chance": chance / count, "patches": len(patches), "draws": count}


def nse_card(path: Path) -> ModelCard:
    """The card of an NSE checkpoint (`srtk pretrain-nse`'s final.safetensors), or a one-line error."""
    _, card = load_network_with_card(path)
    if card.architecture not in NSE_ARCHITECTURES:
        raise CheckpointError(f"{path}: holds a {card.architecture}, not a neural structure extractor")
    return card


def refit_flags(spec: NSEEvaluation) -> dict[str, Any]:
    """Options of the head-fitting runs (on top of each task's pretext preset; the caller resolves them)."""
    card = nse_card(spec.nse)
    extractor = {key: card.config[key] for key in EXTRACTOR_OPTIONS if key in card.config}
    return {
        "pretext.nse": spec.nse,
        "pretext.extractor_options": extractor,  # the head is fitted to the extractor as it was built
        "pretext.freeze_extractor": True,
        "pretext.sampling": spec.sampling or card.config.get("sampling", "h"),
        "data.train": list(spec.train),
        "data.data_root": spec.data_root,
        "checkpoint.tensorboard": False,
        "runtime.device": spec.device,
        "runtime.seed": spec.seed,
    }


def evaluate_nse(
    spec: NSEEvaluation, refit: Mapping[str, TrainConfig], *, progress: ProgressFn = no_progress
) -> dict[str, Any]:
    """Re-fit a head per task (`refit`: task -> its run's configuration, from refit_flags) on the frozen
    extractor and measure it on the test patches; writes out_dir/evaluation.json."""
    card = nse_card(spec.nse)
    test_folder = resolve_dataset(spec.test, spec.data_root)
    device = pick_device(spec.device)
    report: dict[str, Any] = {"nse": str(spec.nse), "trained_by": card.method, "test": spec.test}
    for task, cfg in refit.items():
        if cfg.pretext.nse != spec.nse or not cfg.pretext.freeze_extractor:
            raise SrtkError(f"the {task} head must be fitted on the frozen extractor of {spec.nse}")
        run_training(cfg, progress=progress)
        head_model, _ = load_srtk_checkpoint(cfg.checkpoint.out_dir / FINAL_MODEL, build_model)
        assert isinstance(head_model, PretextModel)
        patches = test_patches(test_folder, EVAL_PATCH[task])
        torch.manual_seed(spec.seed)  # the same anchors for every NSE measured with this seed
        progress(f"measure {task}", 0, 1)
        result = measure(head_model, patches, repeats=spec.repeats, per_patch=spec.anchors_per_patch, device=device)
        progress(f"measure {task}", 1, 1)
        report[task] = {"patch_size": EVAL_PATCH[task], "refit_iterations": cfg.optim.iterations, **result}
        if task == "contrastive":
            report[task]["sampling"] = cfg.pretext.sampling
    write_json(spec.out_dir / EVALUATION_FILE, report)
    return report
