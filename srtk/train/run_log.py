"""A training run's log: one JSON object per line in log.jsonl, mirrored to TensorBoard when it is installed, and
the running mean of the losses since the last log line (kept as tensors: no device sync per iteration)."""

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"
VALIDATION_SCALARS = ("psnr_y", "ssim_y")


class RunLog:
    """Writes on the main process only; the others keep their loss windows (they log nothing)."""

    def __init__(self, out_dir: Path, *, main: bool, tensorboard: bool) -> None:
        self.out_dir, self.main = out_dir, main
        self.tensorboard: Any = None if tensorboard else False  # a SummaryWriter once first used
        self.window: dict[str, list[Tensor]] = {}
        self.last_losses: dict[str, float] = {}

    def write(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / LOG_FILE).open("a") as handle:
            handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        self._tensorboard(record)

    def accumulate(self, losses: dict[str, Tensor]) -> None:
        for name, value in losses.items():
            self.window.setdefault(name, []).append(value.float())

    def flush(self, iteration: int, learning_rates: dict[str, float]) -> None:
        """One "train" line: the mean of each loss since the last flush, and the learning rates."""
        if not self.window:
            return
        self.last_losses = {name: float(torch.stack(values).mean()) for name, values in self.window.items()}
        self.write(
            {"event": "train", "iteration": iteration, "losses": self.last_losses, "learning_rates": learning_rates}
        )
        self.window = {}

    def progress_detail(self, iterations: int, seconds: float) -> str:
        """Iterations per second of this session and the latest logged totals (generator and critics)."""
        rate = iterations / max(seconds, 1e-9)
        losses = "  ".join(f"{name} {value:.4g}" for name, value in self.last_losses.items() if name.endswith("total"))
        return f"{rate:.2f} it/s  {losses}".rstrip()

    def _tensorboard(self, record: dict[str, Any]) -> None:
        """Mirror losses, learning rates and validation metrics to TensorBoard when it is installed."""
        if self.tensorboard is False:
            return
        if self.tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: the JSONL log has everything
                self.tensorboard = False
                return
            self.tensorboard = SummaryWriter(log_dir=str(self.out_dir / TENSORBOARD_DIR))
        step = record.get("iteration")
        if step is None:
            return
        scalars = {f"loss/{k}": v for k, v in record.get("losses", {}).items()}
        scalars.update({f"learning_rate/{k}": v for k, v in record.get("learning_rates", {}).items()})
        if record.get("event") == "validation":
            scalars.update({f"validation/{k}": record[k] for k in VALIDATION_SCALARS if k in record})
        for tag, value in scalars.items():
            self.tensorboard.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.tensorboard:
            self.tensorboard.close()
