"""Validation during training: `srtk evaluate`'s protocol (srtk.evaluate.ImageScorer, the same tiler) on the
validation images, each rank scoring its share, the means summed across ranks."""

import torch
from torch import nn

from srtk.config.inference import EvalConfig
from srtk.config.train import TrainConfig
from srtk.data.datasets import EvalPair, evaluation_pairs, resolve_dataset
from srtk.errors import SrtkError
from srtk.evaluate import ImageScorer
from srtk.train.processes import Processes

VALIDATION_METRICS = ("psnr_y", "ssim_y")


def validation_pairs(cfg: TrainConfig) -> list[EvalPair]:
    """The validation images (HR and the protocol's LR), at most data.val_max_images; a bad image is an error."""
    if not cfg.data.val_dataset:
        return []
    pairs: list[EvalPair] = []
    for item in evaluation_pairs(resolve_dataset(cfg.data.val_dataset, cfg.data.data_root), cfg.data.scale):
        if isinstance(item, tuple):
            raise SrtkError(f"validation image {item[0]}: {item[1]}")
        pairs.append(item)
        if cfg.data.val_max_images is not None and len(pairs) >= cfg.data.val_max_images:
            break
    return pairs


class Validation:
    """Mean PSNR/SSIM on Y of a model over the validation images; falsy when no validation set is configured."""

    def __init__(self, cfg: TrainConfig, processes: Processes) -> None:
        self.processes = processes
        self.pairs = validation_pairs(cfg)
        protocol = EvalConfig(
            model="training",
            datasets=(str(cfg.data.val_dataset),),
            scale=cfg.data.scale,
            metrics=VALIDATION_METRICS,
            precision=cfg.runtime.precision,
            tile=cfg.data.val_tile,
        )
        self.score = ImageScorer(protocol, processes.device) if self.pairs else None

    def __bool__(self) -> bool:
        return self.score is not None

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        assert self.score is not None, "no validation set configured"
        was_training = model.training
        model.eval()
        sums = torch.zeros(len(VALIDATION_METRICS) + 1, dtype=torch.float64)
        for pair in self.pairs[self.processes.rank :: self.processes.world_size]:
            values = self.score(model, pair)
            sums += torch.tensor([*(values[k] for k in VALIDATION_METRICS), 1.0], dtype=torch.float64)
        sums = self.processes.sum(sums)
        model.train(was_training)
        count = max(float(sums[-1]), 1.0)
        return {**{k: float(sums[i]) / count for i, k in enumerate(VALIDATION_METRICS)}, "images": int(sums[-1])}
