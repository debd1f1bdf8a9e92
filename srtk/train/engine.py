"""The one training loop of srtk, for every method (DESIGN.md "train/engine.py").

Top to bottom: setup (processes, device, seeds, method, optimizers, precision, EMA, data), resume, loop
(learning rates, generator step, critic step, log, validate, checkpoint), finish. The engine knows nothing of
a method's networks or losses beyond `SRMethod`'s interface: a generator, a dict of critics, and two functions
returning named losses; methods know nothing of devices, precision or processes.

- Precision: bf16 autocast, or fp16 autocast with a gradient scaler; channels_last; optional torch.compile;
  fused Adam on CUDA.
- Processes: under torchrun (WORLD_SIZE > 1) every rank trains on its shard of each epoch and gradients are
  averaged across ranks after each backward (what DDP does, without wrapping the method's networks, so that
  methods keep calling their own modules); validation metrics are summed across ranks.
- Robustness: a non-finite loss or gradient skips the step (no update, reported in the log); too many
  consecutive skips stop the run with the last checkpoint intact. SIGINT/SIGTERM finish the current step,
  write a checkpoint and return. Checkpoints are atomic; `resume` continues bit-identically on CPU with
  deterministic algorithms (RNG states and the data position are part of the state).
Convention: images RGB, NCHW, float in [0, 1].
"""

import copy
import json
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from srtk.data.datasets import EvalPair, PairedPatchDataset, evaluation_pairs, resolve_dataset
from srtk.data.io import quantize, write_json
from srtk.errors import ConfigError, SrtkError
from srtk.infer import autocast_context, pick_device, sr_of
from srtk.metrics.psnr_ssim import psnr_y, ssim_y
from srtk.models.checkpoint import ModelCard, save_model
from srtk.progress import ProgressFn, no_progress
from srtk.train.config import OptimConfig, TrainConfig
from srtk.train.methods import GeneratorStep, SRMethod, build_method
from srtk.train.state import load_training_state, restore_rng_state, rng_state, save_training_state
from srtk.version import __version__

STATE_FILE = "last.state.pt"
LAST_MODEL = "last.safetensors"
BEST_MODEL = "best.safetensors"
FINAL_MODEL = "final.safetensors"
CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
RESULT_FILE = "result.json"
TENSORBOARD_DIR = "tensorboard"
# Options that may change between a run and its resumption: they do not change what is computed.
RESUMABLE_CHANGES = (
    "optim.iterations",
    "checkpoint.",
    "runtime.device",
    "runtime.compile",
    "data.num_workers",
    "data.val_dataset",
    "data.val_max_images",
    "data.cache_dir",
    "model.init",
)


class TrainingDiverged(SrtkError):
    """Too many consecutive steps had non-finite losses or gradients."""


@dataclass
class StepReport:
    """What one iteration did: its named losses (floats, per network) or why it was skipped."""

    losses: dict[str, Tensor] = field(default_factory=dict)
    skipped: str | None = None  # reason, None when the step was applied
    # fp16 only: the gradient scaler found inf/NaN gradients, skipped the update and lowered its scale. Normal
    # while the scale settles, so it is logged but not counted as a failure.
    overflow: bool = False


@dataclass
class TrainResult:
    status: str  # "completed", "interrupted" (signal; checkpoint written) or "diverged" (raised, result written)
    iterations: int
    out_dir: Path
    final_losses: dict[str, float]
    validation: dict[str, float]
    best: dict[str, Any]
    skipped_steps: list[dict[str, Any]]
    model: Path | None
    wall_time_s: float
    config: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "srtk_version": __version__,
            "status": self.status,
            "iterations": self.iterations,
            "out_dir": str(self.out_dir),
            "final_losses": self.final_losses,
            "validation": self.validation,
            "best": self.best,
            "skipped_steps": self.skipped_steps,
            "model": str(self.model) if self.model else None,
            "wall_time_s": self.wall_time_s,
            "config": self.config,
        }


def learning_rate_at(base: float, optim: OptimConfig, iteration: int) -> float:
    """The learning rate of step `iteration` (0-based): a pure function, so resuming needs no scheduler state."""
    if optim.schedule == "multistep":  # x gamma at each milestone passed (paper 000 sec. 5.1)
        return base * optim.gamma ** sum(iteration >= m for m in optim.milestones)
    if optim.schedule == "cosine":  # base -> min over a period, restarting each period (paper 003 sec. 4.1)
        period = optim.cosine_period or optim.iterations
        phase = (iteration % period) / period
        return optim.min_learning_rate + (base - optim.min_learning_rate) * (1 + math.cos(math.pi * phase)) / 2
    return base


# ---------------------------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_processes(device_name: str) -> tuple[Processes, torch.device]:
    """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU) and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Processes(), pick_device(device_name)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(rank, world_size, local_rank), device


class ShardedSampler(Sampler[tuple[int, int]]):
    """Each rank's share of a seeded per-epoch permutation, starting at a batch offset, as (epoch, index) keys.

    DistributedSampler's sharding (pad to a multiple of the world size, rank r takes every world-th index),
    plus the offset that lets a resumed run continue mid-epoch with exactly the batches it had not seen.
    """

    def __init__(self, length: int, *, seed: int, rank: int, world_size: int) -> None:
        self.length, self.seed, self.rank, self.world_size = length, seed, rank, world_size
        self.epoch, self.start = 0, 0

    def shard(self) -> list[int]:
        order = torch.randperm(self.length, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        padded = order + order[: (-self.length) % self.world_size]
        return padded[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter([(self.epoch, index) for index in self.shard()[self.start :]])

    def __len__(self) -> int:
        return len(self.shard()) - self.start


class EpochKeyedDataset(Dataset):
    """A PairedPatchDataset addressed by (epoch, index): the epoch travels with each key, so persistent
    workers (which keep their caches of decoded HR and generated LR images) never need a set_epoch call."""

    def __init__(self, dataset: PairedPatchDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        epoch, index = key
        self.dataset.set_epoch(epoch)
        return self.dataset[index]


class BatchStream:
    """Endless batches, epoch after epoch; (epoch, batch) counts what has been consumed, for resuming."""

    def __init__(
        self,
        dataset: PairedPatchDataset,
        sampler: ShardedSampler,
        *,
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
    ) -> None:
        self.sampler, self.batch_size = sampler, batch_size
        self.epoch, self.batch = 0, 0
        self.batches_per_epoch = len(sampler.shard()) // batch_size
        if self.batches_per_epoch == 0:
            raise ConfigError(
                f"{len(dataset)} training patches per epoch cannot fill one batch of {batch_size} per process: "
                f"lower data.batch_size or raise data.repeat"
            )
        # One loader for the whole run: its workers persist across epochs, and with them their image caches.
        self.loader = DataLoader(
            EpochKeyedDataset(dataset),
            batch_size=batch_size,
            sampler=sampler,
            num_workers=num_workers,
            pin_memory=pin_memory,
            drop_last=True,
            persistent_workers=num_workers > 0,
            # Its own generator: each iterator draws a worker seed, which must not come from the global RNG
            # (a resumed run starts an iterator mid-epoch; the uninterrupted run did not).
            generator=torch.Generator().manual_seed(sampler.seed),
        )
        self._iterator: Iterator[dict[str, Tensor]] | None = None

    def next(self) -> dict[str, Tensor]:
        if self.batch >= self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
            self._iterator = None
        if self._iterator is None:
            self.sampler.epoch, self.sampler.start = self.epoch, self.batch * self.batch_size
            self._iterator = iter(self.loader)
        batch = next(self._iterator)
        self.batch += 1
        return batch


# ------------------------------------------------------------------------------------------------ trainer


def _set_requires_grad(module: nn.Module, flag: bool) -> None:
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


class Trainer:
    """One training run; `run_training` is the public entry point, this class is split out for tests."""

    def __init__(self, cfg: TrainConfig, *, progress: ProgressFn = no_progress) -> None:
        self.cfg, self.progress = cfg, progress
        self.out_dir = cfg.checkpoint.out_dir
        self.processes, self.device = _setup_processes(cfg.runtime.device)
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        self.tensorboard: Any = None if cfg.checkpoint.tensorboard else False  # SummaryWriter once first used
        if cfg.runtime.deterministic:
            torch.use_deterministic_algorithms(True)  # restored by close()
        precision = cfg.runtime.precision
        if precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("runtime.precision fp16 needs CUDA (use bf16 on CPU)")
        self.autocast = lambda: autocast_context(self.device, precision)

        # Same seed on every rank: identical initial weights. Then a per-rank stream for the steps.
        self._seed(cfg.runtime.seed)
        self.method: SRMethod = build_method(cfg)
        self.initialized_tensors = 0  # tensors copied from --init (paper 000 sec. 5.1: from the PSNR model)
        if cfg.model.init is not None and not cfg.checkpoint.resume:
            self.initialized_tensors = self.method.initialize_from(cfg.model.init)
        self.method.to(self.device)
        if cfg.runtime.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self._broadcast_parameters()
        self.ema: nn.Module | None = None
        if cfg.optim.ema_decay > 0:
            self.ema = copy.deepcopy(self.method.generator).requires_grad_(False).eval()
        self._seed(cfg.runtime.seed + self.processes.rank)

        fused = self.device.type == "cuda"  # fused Adam: one kernel per step instead of one per tensor
        optim = cfg.optim
        self.optimizers: dict[str, torch.optim.Optimizer] = {
            "generator": torch.optim.Adam(
                self.method.generator.parameters(),
                lr=optim.learning_rate,
                betas=optim.betas,
                eps=optim.eps,
                weight_decay=optim.weight_decay,
                fused=fused,
            )
        }
        self.base_rates = {"generator": optim.learning_rate}
        for name, critic in self.method.discriminators.items():
            self.optimizers[name] = torch.optim.Adam(
                critic.parameters(),
                lr=optim.discriminator_learning_rate,
                betas=optim.betas,
                eps=optim.eps,
                weight_decay=optim.weight_decay,
                fused=fused,
            )
            self.base_rates[name] = optim.discriminator_learning_rate
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        if cfg.runtime.compile:
            self.method.generator.compile()
            for critic in self.method.discriminators.values():
                critic.compile()

        folders = [resolve_dataset(name, cfg.data.data_root) for name in cfg.data.train]
        self.dataset = PairedPatchDataset(
            folders,
            scale=cfg.data.scale,
            lr_patch_size=cfg.data.lr_patch_size,
            augment=cfg.data.augment,
            repeat=cfg.data.repeat,
            seed=cfg.runtime.seed,
            cache_dir=cfg.data.cache_dir,
        )
        sampler = ShardedSampler(
            len(self.dataset), seed=cfg.runtime.seed, rank=self.processes.rank, world_size=self.processes.world_size
        )
        self.stream = BatchStream(
            self.dataset,
            sampler,
            batch_size=cfg.data.batch_size,
            # More loader processes than cores only thrash (the patches are deterministic either way).
            num_workers=min(cfg.data.num_workers, len(os.sched_getaffinity(0))),
            pin_memory=self.device.type == "cuda",
        )
        self.val_pairs: list[EvalPair] = []
        if cfg.data.val_dataset:
            folder = resolve_dataset(cfg.data.val_dataset, cfg.data.data_root)
            for item in evaluation_pairs(folder, cfg.data.scale):
                if isinstance(item, tuple):
                    raise SrtkError(f"validation image {item[0]}: {item[1]}")
                self.val_pairs.append(item)
                if cfg.data.val_max_images is not None and len(self.val_pairs) >= cfg.data.val_max_images:
                    break

        self.iteration = 0
        self.bad_in_a_row = 0
        self.skipped: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"metric": cfg.checkpoint.best_metric, "value": None, "iteration": None}
        self.last_validation: dict[str, float] = {}
        # Losses of the iterations since the last log line, kept as tensors: no device sync per iteration.
        self.window: dict[str, list[Tensor]] = {}
        self.last_losses: dict[str, float] = {}
        self.stop_requested = False

    # -------------------------------------------------------------------------------------------- setup

    @staticmethod
    def _seed(seed: int) -> None:
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)

    def _broadcast_parameters(self) -> None:
        if self.processes.distributed:  # belt and braces: ranks were seeded alike, rank 0's weights rule
            for tensor in self.method.state_dict().values():
                dist.broadcast(tensor, src=0)

    def _average_gradients(self, module: nn.Module) -> None:
        """Mean of every gradient over the ranks, in one flat all-reduce (DDP's bucketing, one bucket)."""
        if not self.processes.distributed:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
        dist.all_reduce(flat)
        flat /= self.processes.world_size
        offset = 0
        for p in params:
            count = p.numel()
            p.grad.copy_(flat[offset : offset + count].view_as(p.grad))  # type: ignore[union-attr]
            offset += count

    def _all_ranks_agree(self, flag: bool) -> bool:
        """True only if `flag` holds on every rank (a step is skipped everywhere or nowhere)."""
        if not self.processes.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() > 0)

    def _any_rank(self, flag: bool) -> bool:
        return not self._all_ranks_agree(not flag)

    # ----------------------------------------------------------------------------------------- one step

    def _finite_gradients(self, module: nn.Module) -> bool:
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return True
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())  # one fused norm per tensor

    def _set_learning_rates(self) -> None:
        for name, optimizer in self.optimizers.items():
            rate = learning_rate_at(self.base_rates[name], self.cfg.optim, self.iteration)
            for group in optimizer.param_groups:
                group["lr"] = rate

    def train_step(self, lr: Tensor, hr: Tensor) -> StepReport:
        """One generator step and one critic step on a batch; non-finite losses or gradients skip them."""
        method, generator = self.method, self.method.generator
        lr = lr.to(self.device, non_blocking=True)
        hr = hr.to(self.device, non_blocking=True)
        if self.cfg.runtime.channels_last:
            lr, hr = lr.contiguous(memory_format=torch.channels_last), hr.contiguous(memory_format=torch.channels_last)
        self._set_learning_rates()
        report = StepReport()

        # Generator: critics frozen, so its backward leaves their gradients alone.
        for critic in method.discriminators.values():
            _set_requires_grad(critic, False)
        g_optimizer = self.optimizers["generator"]
        g_optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            step: GeneratorStep = method.generator_losses(lr, hr)
        g_total = step.losses["total"]
        if not self._all_ranks_agree(bool(torch.isfinite(g_total))):
            report.skipped = "non-finite generator loss"
            return report
        self.scaler.scale(g_total).backward()
        self._average_gradients(generator)
        fp16 = self.scaler.is_enabled()
        if self.cfg.optim.grad_clip is not None:
            self.scaler.unscale_(g_optimizer)
            nn.utils.clip_grad_norm_(generator.parameters(), self.cfg.optim.grad_clip)
        # fp16: the scaler checks gradients itself (and skips that step); other precisions check here.
        if not fp16 and not self._all_ranks_agree(self._finite_gradients(generator)):
            g_optimizer.zero_grad(set_to_none=True)
            report.skipped = "non-finite generator gradients"
            return report
        self.scaler.step(g_optimizer)
        report.losses.update({f"g_{k}": v.detach() for k, v in step.losses.items()})

        if method.discriminators:
            for critic in method.discriminators.values():
                _set_requires_grad(critic, True)
            for name in method.discriminators:
                self.optimizers[name].zero_grad(set_to_none=True)
            with self.autocast():
                d_terms = method.discriminator_losses(step)
            d_total = d_terms["total"]
            if not self._all_ranks_agree(bool(torch.isfinite(d_total))):
                report.skipped = "non-finite discriminator loss (generator step applied)"
            else:
                self.scaler.scale(d_total).backward()
                for critic in method.discriminators.values():
                    self._average_gradients(critic)
                if not fp16 and not self._all_ranks_agree(
                    all(self._finite_gradients(c) for c in method.discriminators.values())
                ):
                    report.skipped = "non-finite discriminator gradients (generator step applied)"
                else:
                    for name in method.discriminators:
                        self.scaler.step(self.optimizers[name])
                    report.losses.update({f"d_{k}": v.detach() for k, v in d_terms.items()})
        if fp16:
            scale = self.scaler.get_scale()
            self.scaler.update()
            report.overflow = self.scaler.get_scale() < scale
        else:
            self.scaler.update()
        if self.ema is not None:
            decay = self.cfg.optim.ema_decay
            with torch.no_grad():
                ema_params = list(self.ema.parameters())
                torch._foreach_lerp_(ema_params, [p.detach() for p in generator.parameters()], 1 - decay)
                for ema_buffer, buffer in zip(self.ema.buffers(), generator.buffers(), strict=True):
                    ema_buffer.copy_(buffer)
        return report

    # ------------------------------------------------------------------------------------- validation

    def inference_model(self) -> nn.Module:
        return self.ema if self.ema is not None else self.method.generator

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean PSNR/SSIM on Y (crop = scale, 8-bit SR) over the validation images, summed across ranks."""
        model = self.inference_model()
        was_training = model.training
        model.eval()
        scale = self.cfg.data.scale
        sums = torch.zeros(3, dtype=torch.float64)
        for pair in self.val_pairs[self.processes.rank :: self.processes.world_size]:
            lr = pair.lr.unsqueeze(0).to(self.device)
            with self.autocast():
                sr = sr_of(model(lr))
            sr = quantize(sr.float().cpu())
            hr = pair.hr.unsqueeze(0)
            sums += torch.stack(
                [psnr_y(sr, hr, crop=scale)[0], ssim_y(sr, hr, crop=scale)[0], torch.ones((), dtype=torch.float64)]
            )
        if self.processes.distributed:
            reduced = sums.to(self.device)
            dist.all_reduce(reduced)
            sums = reduced.cpu()
        model.train(was_training)
        count = max(float(sums[2]), 1.0)
        return {"psnr_y": float(sums[0]) / count, "ssim_y": float(sums[1]) / count, "images": int(sums[2])}

    # ------------------------------------------------------------------------------------- checkpoints

    def model_card(self, metrics: dict[str, Any] | None = None) -> ModelCard:
        return ModelCard(
            architecture=self.method.architecture,
            config=dict(self.method.architecture_config),
            scale=self.cfg.data.scale,
            method=self.cfg.method,
            training_data=",".join(self.cfg.data.train),
            metrics=dict(metrics or {}),
            source=f"trained by srtk {__version__}, {self.iteration} iterations",
        )

    def _state(self) -> dict[str, Any]:
        networks = {"generator": self.method.generator.state_dict()}
        networks.update({name: critic.state_dict() for name, critic in self.method.discriminators.items()})
        if self.ema is not None:
            networks["ema"] = self.ema.state_dict()
        return {
            "srtk_version": __version__,
            "config": self.cfg.as_dict(),
            "iteration": self.iteration,
            "data_position": {"epoch": self.stream.epoch, "batch": self.stream.batch},
            "world_size": self.processes.world_size,
            "networks": networks,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "bad_in_a_row": self.bad_in_a_row,
            "skipped": self.skipped,
            "best": self.best,
            "last_validation": self.last_validation,
        }

    def save_checkpoint(self) -> None:
        """The training state (for --resume) and the current model (safetensors + card), atomically; rank 0."""
        if not self.processes.main:
            return
        save_training_state(self.out_dir / STATE_FILE, self._state())
        save_model(self.out_dir / LAST_MODEL, self.inference_model(), self.model_card(self.last_validation))
        self.log({"event": "checkpoint", "iteration": self.iteration})

    def resume(self) -> None:
        """Restore everything from out_dir/last.state.pt; the configs must agree on what is computed."""
        state = load_training_state(self.out_dir / STATE_FILE)
        changed = [
            key
            for key in _differences(state["config"], self.cfg.as_dict())
            if not any(
                key == allowed or (allowed.endswith(".") and key.startswith(allowed)) for allowed in RESUMABLE_CHANGES
            )
        ]
        optim = self.cfg.optim
        if (
            optim.schedule == "cosine"
            and optim.cosine_period is None
            and "optim.iterations" in _differences(state["config"], self.cfg.as_dict())
        ):
            changed.append("optim.iterations (the cosine schedule spans the run)")
        if changed:
            raise ConfigError(
                f"{self.out_dir / STATE_FILE}: cannot resume with a different configuration ({', '.join(changed)})"
            )
        if state["world_size"] != self.processes.world_size:
            raise ConfigError(
                f"{self.out_dir / STATE_FILE}: written by {state['world_size']} process(es), resumed with "
                f"{self.processes.world_size}: the data order would differ"
            )
        networks = state["networks"]
        self.method.generator.load_state_dict(networks["generator"])
        for name, critic in self.method.discriminators.items():
            critic.load_state_dict(networks[name])
        if self.ema is not None:
            self.ema.load_state_dict(networks["ema"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        self.stream.epoch = int(state["data_position"]["epoch"])
        self.stream.batch = int(state["data_position"]["batch"])
        self.bad_in_a_row = int(state["bad_in_a_row"])
        self.skipped = list(state["skipped"])
        self.best = dict(state["best"])
        self.last_validation = dict(state["last_validation"])
        restore_rng_state(state["rng"])
        if self.processes.distributed:  # each rank continues its own stream from its own seed
            self._seed(self.cfg.runtime.seed + self.processes.rank + self.iteration)
        self.log({"event": "resumed", "iteration": self.iteration})

    # ---------------------------------------------------------------------------------------- logging

    def log(self, record: dict[str, Any]) -> None:
        if not self.processes.main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with (self.out_dir / LOG_FILE).open("a") as handle:
            handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        self._tensorboard(record)

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
            scalars.update({f"validation/{k}": record[k] for k in ("psnr_y", "ssim_y") if k in record})
        for tag, value in scalars.items():
            self.tensorboard.add_scalar(tag, value, step)

    def _accumulate(self, losses: dict[str, Tensor]) -> None:
        for name, value in losses.items():
            self.window.setdefault(name, []).append(value.float())

    def _progress_detail(self, started: float) -> str:
        """Latest logged losses (generator and critics' totals) and the iterations per second of this session."""
        rate = (self.iteration - self.start_iteration) / max(time.time() - started, 1e-9)
        losses = "  ".join(f"{name} {value:.4g}" for name, value in self.last_losses.items() if name.endswith("total"))
        return f"{rate:.2f} it/s  {losses}".rstrip()

    def _flush_window(self) -> None:
        if not self.window:
            return
        self.last_losses = {name: float(torch.stack(values).mean()) for name, values in self.window.items()}
        rates = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        self.log({"event": "train", "iteration": self.iteration, "losses": self.last_losses, "learning_rates": rates})
        self.window = {}

    # --------------------------------------------------------------------------------------------- run

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_requested and signum == signal.SIGINT:  # a second Ctrl-C: stop now, no checkpoint
            raise KeyboardInterrupt
        self.stop_requested = True

    def run(self) -> TrainResult:
        cfg = self.cfg
        started = time.time()
        if self.processes.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.out_dir / CONFIG_FILE, {"srtk_version": __version__, "config": cfg.as_dict()})
        if cfg.checkpoint.resume:
            self.resume()
        self.start_iteration = self.iteration  # it/s counts this session's iterations only
        if not cfg.checkpoint.resume:
            self.log({"event": "start", "initialized_tensors": self.initialized_tensors, "srtk_version": __version__})
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, self._request_stop)
        self.method.train()
        total = cfg.optim.iterations
        status, failure = "completed", ""
        try:
            while self.iteration < total:
                batch = self.stream.next()
                report = self.train_step(batch["lr"], batch["hr"])
                self.iteration += 1
                if report.skipped:
                    self.bad_in_a_row += 1
                    event = {"iteration": self.iteration, "reason": report.skipped}
                    self.skipped.append(event)
                    self.log({"event": "skipped", **event})
                    if self.bad_in_a_row >= cfg.runtime.max_bad_steps:
                        failure = (
                            f"{self.out_dir}: training stopped at iteration {self.iteration} after "
                            f"{self.bad_in_a_row} consecutive skipped steps ({report.skipped}); the last checkpoint "
                            f"{self.out_dir / STATE_FILE} is intact: lower the learning rate or check the data"
                        )
                        status = "diverged"  # no checkpoint now: the last good one stays the one to resume
                        break
                else:
                    self.bad_in_a_row = 0
                if report.overflow:
                    self.log({"event": "fp16_overflow", "iteration": self.iteration, "scale": self.scaler.get_scale()})
                self._accumulate(report.losses)
                if self.iteration % cfg.checkpoint.log_every == 0 or self.iteration == total:
                    self._flush_window()
                if self.val_pairs and (self.iteration % cfg.checkpoint.validate_every == 0 or self.iteration == total):
                    self._validate_and_keep_best()
                stop = self._any_rank(self.stop_requested)
                if self.iteration % cfg.checkpoint.every == 0 or self.iteration == total or stop:
                    self.save_checkpoint()
                self.progress("train", self.iteration, total, self._progress_detail(started))
                if stop:
                    status = "interrupted"
                    self.log({"event": "interrupted", "iteration": self.iteration})
                    break
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        self._flush_window()
        model_path = None
        if status == "completed" and self.processes.main:
            model_path = save_model(
                self.out_dir / FINAL_MODEL, self.inference_model(), self.model_card(self.last_validation)
            )
        result = TrainResult(
            status=status,
            iterations=self.iteration,
            out_dir=self.out_dir,
            final_losses=self.last_losses,
            validation=self.last_validation,
            best=self.best,
            skipped_steps=self.skipped,
            model=model_path,
            wall_time_s=round(time.time() - started, 3),
            config=cfg.as_dict(),
        )
        if self.processes.main:
            write_json(self.out_dir / RESULT_FILE, result.as_dict())
            self.log({"event": "finished", "status": status, "iteration": self.iteration})
        if status == "diverged":
            raise TrainingDiverged(failure)
        return result

    def _validate_and_keep_best(self) -> None:
        metrics = self.validate()
        self.last_validation = metrics
        self.log({"event": "validation", "iteration": self.iteration, **metrics})
        key = self.cfg.checkpoint.best_metric
        if self.best["value"] is None or metrics[key] > self.best["value"]:
            self.best = {"metric": key, "value": metrics[key], "iteration": self.iteration}
            if self.processes.main:
                save_model(self.out_dir / BEST_MODEL, self.inference_model(), self.model_card(metrics))

    def close(self) -> None:
        torch.use_deterministic_algorithms(self._was_deterministic)
        if self.tensorboard:
            self.tensorboard.close()
        if self.processes.distributed and dist.is_initialized():
            dist.destroy_process_group()


def run_training(cfg: TrainConfig, *, progress: ProgressFn = no_progress) -> TrainResult:
    """Train `cfg.method` as configured; writes checkpoints, log, resolved config and result to cfg's out_dir."""
    trainer = Trainer(cfg, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
