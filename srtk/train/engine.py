"""The one training loop of srtk, for every method (DESIGN.md "train/engine.py").

Top to bottom: setup (processes, seeds, method, optimizers, precision, EMA, data), resume, loop (learning rates,
generator step, critic step, log, validate, checkpoint), finish. The engine knows a method only as `SRMethod`'s
interface (a generator, a dict of critics, two functions returning named losses); the rooms around it are the
process group (processes.py), the batch stream (data_stream.py), the run folder and log (run_folder.py,
run_log.py) and the saved state (state.py). Validation is `srtk evaluate`'s ImageScorer.

- Precision: bf16 autocast, or fp16 autocast with a gradient scaler; channels_last; torch.compile; fused Adam on CUDA.
- Robustness: a non-finite loss or gradient skips the step (no update, logged); too many consecutive skips stop
  the run with the last checkpoint intact. SIGINT/SIGTERM finish the current step, write a checkpoint and return.
  Checkpoints are atomic; `resume` continues bit-identically on CPU with deterministic algorithms.
Convention: images RGB, NCHW, float in [0, 1]."""

import copy
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from srtk.config.train import TrainConfig
from srtk.data.io import write_json
from srtk.errors import SrtkError
from srtk.models.checkpoint import ModelCard, save_model
from srtk.progress import ProgressFn, no_progress
from srtk.runtime import autocast_context, check_precision
from srtk.train import run_folder
from srtk.train.data_stream import training_stream
from srtk.train.methods import SRMethod, build_method
from srtk.train.optim import Optimizers, finite_gradients, update_ema, with_epoch_steps
from srtk.train.pretext import PretextMethod
from srtk.train.processes import Processes
from srtk.train.run_log import RunLog
from srtk.train.state import (
    RunState,
    TrainResult,
    check_resumable,
    load_training_state,
    restore_rng_state,
    rng_state,
    save_training_state,
    seed_everything,
)
from srtk.train.validation import Validation
from srtk.version import __version__


class TrainingDiverged(SrtkError):
    """Too many consecutive steps had non-finite losses or gradients."""


@dataclass
class StepReport:
    """What one iteration did: its named losses (per network) or why it was skipped."""

    losses: dict[str, Tensor] = field(default_factory=dict)
    skipped: str | None = None  # reason, None when the step was applied
    overflow: bool = False  # fp16: the scaler skipped the update and lowered its scale (normal while it settles)


class Trainer:
    """One training run; `run_training` is the public entry point, this class is split out for tests."""

    def __init__(self, cfg: TrainConfig, *, progress: ProgressFn = no_progress) -> None:
        self.cfg, self.progress, self.out_dir = cfg, progress, cfg.checkpoint.out_dir
        runtime, model = cfg.runtime, cfg.model
        self.processes = Processes.join(runtime.device)
        self.device = device = self.processes.device
        check_precision(runtime.precision, device)
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        if runtime.deterministic:
            torch.use_deterministic_algorithms(True)  # restored by close()
        if self.processes.main:
            run_folder.prepare_run_folder(cfg.checkpoint)  # never two runs in one folder

        seed_everything(runtime.seed)  # the same on every rank: identical initial weights; then a per-rank stream
        self.method: SRMethod | PretextMethod = PretextMethod(cfg) if cfg.pretext.task else build_method(cfg)
        self.init_report = None if cfg.checkpoint.resume else self.method.initialize(model, cfg.method)
        self.method.to(device)
        if runtime.channels_last:
            self.method.to(memory_format=torch.channels_last)
        self.processes.broadcast(self.method)
        self.ema = copy.deepcopy(self.method.generator).requires_grad_(False).eval() if cfg.optim.ema_decay else None
        seed_everything(runtime.seed + self.processes.rank)

        processes = self.processes
        self.stream = training_stream(
            cfg.data,
            seed=runtime.seed,
            rank=processes.rank,
            world_size=processes.world_size,
            pin_memory=device.type == "cuda",
        )
        networks = {"generator": self.method.generator, **self.method.discriminators}
        optim = with_epoch_steps(cfg.optim, self.stream.batches_per_epoch)
        self.optimizers = Optimizers(networks, optim, fused=device.type == "cuda")
        self.scaler = torch.amp.GradScaler(device.type, enabled=runtime.precision == "fp16")
        if runtime.compile:
            for network in networks.values():
                network.compile()
        self.validation = Validation(cfg, self.processes)
        # The folder appears only now: a configuration or data error above leaves nothing behind.
        self.log = RunLog(self.out_dir, main=self.processes.main, tensorboard=cfg.checkpoint.tensorboard)
        self.state = RunState(best={"metric": cfg.checkpoint.best_metric, "value": None, "iteration": None})
        self.stop_requested = False

    # ----------------------------------------------------------------------------------------- one step

    def train_step(self, lr: Tensor, hr: Tensor) -> StepReport:
        """One generator step and one critic step on a batch; non-finite losses or gradients skip them."""
        method, critics, agree = self.method, list(self.method.discriminators.values()), self.processes.all_agree
        memory = torch.channels_last if self.cfg.runtime.channels_last else torch.contiguous_format
        lr = lr.to(self.device, non_blocking=True).contiguous(memory_format=memory)
        hr = hr.to(self.device, non_blocking=True).contiguous(memory_format=memory)
        self.optimizers.set_iteration(self.state.iteration)
        generator_steps = method.warm_up(self.state.iteration)  # False: only the critics learn (critic warm-up)
        report, fp16 = StepReport(), self.scaler.is_enabled()

        for critic in critics:  # generator step: critics frozen, so its backward leaves their gradients alone
            critic.requires_grad_(False)
        g_optimizer = self.optimizers["generator"]
        g_optimizer.zero_grad(set_to_none=True)
        with torch.set_grad_enabled(generator_steps), autocast_context(self.device, self.cfg.runtime.precision):
            step = method.generator_losses(lr, hr)
        if not agree(bool(torch.isfinite(step.losses["total"]))):
            return StepReport(skipped="non-finite generator loss")
        if generator_steps:
            self.scaler.scale(step.losses["total"]).backward()
            self.processes.average_gradients(method.generator)
            if self.cfg.optim.grad_clip is not None:
                self.scaler.unscale_(g_optimizer)
                nn.utils.clip_grad_norm_(method.generator.parameters(), self.cfg.optim.grad_clip)
            # fp16: the scaler checks gradients itself (and skips that step); other precisions check here.
            if not fp16 and not agree(finite_gradients([method.generator])):
                g_optimizer.zero_grad(set_to_none=True)
                return StepReport(skipped="non-finite generator gradients")
            self.scaler.step(g_optimizer)
        report.losses.update({f"g_{k}": v.detach() for k, v in step.losses.items()})

        if critics:
            for critic in critics:
                critic.requires_grad_(True)
            for name in method.discriminators:
                self.optimizers[name].zero_grad(set_to_none=True)
            with autocast_context(self.device, self.cfg.runtime.precision):
                d_terms = method.discriminator_losses(step)
            if not agree(bool(torch.isfinite(d_terms["total"]))):
                report.skipped = "non-finite discriminator loss (generator step applied)"
            else:
                self.scaler.scale(d_terms["total"]).backward()
                for critic in critics:
                    self.processes.average_gradients(critic)
                if not fp16 and not agree(finite_gradients(critics)):
                    report.skipped = "non-finite discriminator gradients (generator step applied)"
                else:
                    for name in method.discriminators:
                        self.scaler.step(self.optimizers[name])
                    report.losses.update({f"d_{k}": v.detach() for k, v in d_terms.items()})
        scale = self.scaler.get_scale() if fp16 else 0.0
        self.scaler.update()
        report.overflow = fp16 and self.scaler.get_scale() < scale
        if self.ema is not None:
            update_ema(self.ema, method.generator, self.cfg.optim.ema_decay)
        return report

    # ------------------------------------------------------------------------------------- validation

    def inference_model(self) -> nn.Module:
        return self.ema if self.ema is not None else self.method.generator

    def validate(self) -> dict[str, float]:
        """Mean PSNR/SSIM on Y of the inference model over the validation images (srtk evaluate's protocol)."""
        return self.validation(self.inference_model())

    # ------------------------------------------------------------------------------------- checkpoints

    def model_card(self, metrics: dict[str, Any] | None = None) -> ModelCard:
        return ModelCard(
            architecture=self.method.architecture,
            config=dict(self.method.architecture_config),
            scale=1 if self.cfg.pretext.task else self.cfg.data.scale,  # an NSE does not upscale
            method=self.cfg.method,
            training_data=",".join(self.cfg.data.train),
            metrics=dict(metrics or {}),
            losses=self.method.active_terms(),
            source=f"trained by srtk {__version__}, {self.state.iteration} iterations",
        )

    def save_checkpoint(self) -> None:
        """The training state (for --resume) and the current model (safetensors + card), atomically; rank 0."""
        if not self.processes.main:
            return
        networks = {"generator": self.method.generator.state_dict()}
        networks.update({name: critic.state_dict() for name, critic in self.method.discriminators.items()})
        if self.ema is not None:
            networks["ema"] = self.ema.state_dict()
        self.state.data_position = self.stream.position()
        save_training_state(
            self.out_dir / run_folder.STATE_FILE,
            {
                "srtk_version": __version__,
                "config": self.cfg.as_dict(),
                "world_size": self.processes.world_size,
                "run": self.state.as_dict(),
                "networks": networks,
                "scaler": self.scaler.state_dict(),
                "rng": rng_state(),
                "optimizers": self.optimizers.state_dict(),
            },
        )
        save_model(
            self.out_dir / run_folder.LAST_MODEL, self.inference_model(), self.model_card(self.state.last_validation)
        )
        self.log.write({"event": "checkpoint", "iteration": self.state.iteration})

    def resume(self) -> None:
        """Restore everything from out_dir/last.state.pt; the configs must agree on what is computed."""
        state = load_training_state(self.out_dir / run_folder.STATE_FILE)
        check_resumable(state, self.cfg, self.processes.world_size, self.out_dir / run_folder.STATE_FILE)
        networks = state["networks"]
        for name, network in {"generator": self.method.generator, **self.method.discriminators}.items():
            network.load_state_dict(networks[name])
        if self.ema is not None:
            self.ema.load_state_dict(networks["ema"])
        self.optimizers.load_state_dict(state["optimizers"])
        self.scaler.load_state_dict(state["scaler"])
        self.state = RunState.from_dict(state["run"])
        self.stream.seek(self.state.data_position)
        restore_rng_state(state["rng"])
        if self.processes.distributed:  # each rank continues its own stream from its own seed
            seed_everything(self.cfg.runtime.seed + self.processes.rank + self.state.iteration)
        self.log.write({"event": "resumed", "iteration": self.state.iteration})

    # --------------------------------------------------------------------------------------------- run

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_requested and signum == signal.SIGINT:  # a second Ctrl-C: stop now, no checkpoint
            raise KeyboardInterrupt
        self.stop_requested = True

    def run(self) -> TrainResult:
        cfg, state, log = self.cfg, self.state, self.log
        started, total = time.time(), cfg.optim.iterations
        if self.processes.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.out_dir / run_folder.CONFIG_FILE, {"srtk_version": __version__, "config": cfg.as_dict()})
        if cfg.checkpoint.resume:
            self.resume()
            state = self.state
        else:
            init = self.init_report.as_dict() if self.init_report else None
            log.write({"event": "start", "initialization": init, "srtk_version": __version__})
        first_iteration = state.iteration  # it/s counts this session's iterations only
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {signum: signal.signal(signum, self._request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}
        self.method.train()
        status, failure = "completed", ""
        try:
            while state.iteration < total:
                batch = self.stream.next()
                report = self.train_step(batch["lr"], batch["hr"])
                state.iteration += 1
                state.bad_in_a_row = state.bad_in_a_row + 1 if report.skipped else 0
                if report.skipped:
                    state.skipped.append({"iteration": state.iteration, "reason": report.skipped})
                    log.write({"event": "skipped", **state.skipped[-1]})
                    if state.bad_in_a_row >= cfg.runtime.max_bad_steps:
                        failure = (
                            f"{self.out_dir}: training stopped at iteration {state.iteration} after "
                            f"{state.bad_in_a_row} consecutive skipped steps ({report.skipped}); the last checkpoint "
                            f"{self.out_dir / run_folder.STATE_FILE} is intact: lower the learning rate or check data"
                        )
                        status = "diverged"  # no checkpoint now: the last good one stays the one to resume
                        break
                if report.overflow:
                    log.write(
                        {"event": "fp16_overflow", "iteration": state.iteration, "scale": self.scaler.get_scale()}
                    )
                log.accumulate(report.losses)
                last = state.iteration == total
                if state.iteration % cfg.checkpoint.log_every == 0 or last:
                    log.flush(state.iteration, self.optimizers.learning_rates())
                if self.validation and (state.iteration % cfg.checkpoint.validate_every == 0 or last):
                    self._validate_and_keep_best()
                stop = self.processes.any_rank(self.stop_requested)
                if state.iteration % cfg.checkpoint.every == 0 or last or stop:
                    self.save_checkpoint()
                detail = log.progress_detail(state.iteration - first_iteration, time.time() - started)
                self.progress("train", state.iteration, total, detail)
                if stop:
                    status = "interrupted"
                    log.write({"event": "interrupted", "iteration": state.iteration})
                    break
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.flush(state.iteration, self.optimizers.learning_rates())
        model_path = None
        if status == "completed" and self.processes.main:
            card = self.model_card(state.last_validation)
            model_path = save_model(self.out_dir / run_folder.FINAL_MODEL, self.inference_model(), card)
        result = TrainResult(
            status=status,
            iterations=state.iteration,
            out_dir=self.out_dir,
            final_losses=log.last_losses,
            validation=state.last_validation,
            best=state.best,
            skipped_steps=state.skipped,
            initialization=self.init_report.as_dict() if self.init_report else None,
            model=model_path,
            wall_time_s=round(time.time() - started, 3),
            config=cfg.as_dict(),
        )
        if self.processes.main:
            write_json(self.out_dir / run_folder.RESULT_FILE, result.as_dict())
            log.write({"event": "finished", "status": status, "iteration": state.iteration})
        if status == "diverged":
            raise TrainingDiverged(failure)
        return result

    def _validate_and_keep_best(self) -> None:
        metrics = self.validate()
        self.state.last_validation = metrics
        self.log.write({"event": "validation", "iteration": self.state.iteration, **metrics})
        key, best = self.cfg.checkpoint.best_metric, self.state.best
        if best["value"] is None or metrics[key] > best["value"]:
            self.state.best = {"metric": key, "value": metrics[key], "iteration": self.state.iteration}
            if self.processes.main:
                save_model(self.out_dir / run_folder.BEST_MODEL, self.inference_model(), self.model_card(metrics))

    def close(self) -> None:
        torch.use_deterministic_algorithms(self._was_deterministic)
        self.log.close()
        self.processes.leave()


def run_training(cfg: TrainConfig, *, progress: ProgressFn = no_progress) -> TrainResult:
    """Train as `cfg` says; writes checkpoints, log, resolved config and result to cfg's out_dir."""
    trainer = Trainer(cfg, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
