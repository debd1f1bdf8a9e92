"""Optimisers of a run: Adam for every network, learning rates as a pure function of the iteration, the EMA of
the generator, and the finiteness check of gradients."""

import math
from collections.abc import Iterator, ValuesView
from dataclasses import replace

import torch
from torch import nn

from srtk.config.train import OptimConfig


def learning_rate_at(base: float, optim: OptimConfig, iteration: int) -> float:
    """The learning rate of step `iteration` (0-based): a pure function, so resuming needs no scheduler state."""
    if optim.schedule == "multistep":  # x gamma at each milestone passed (paper 000 sec. 5.1)
        return base * optim.gamma ** sum(iteration >= m for m in optim.milestones)
    # base -> min over a period (paper 003 sec. 4.1.3: one period over the run); restarts: the psnr preset's reading
    if optim.schedule == "cosine":
        period = optim.cosine_period or optim.iterations
        phase = (iteration % period) / period
        return optim.min_learning_rate + (base - optim.min_learning_rate) * (1 + math.cos(math.pi * phase)) / 2
    return base


def with_epoch_steps(optim: OptimConfig, batches_per_epoch: int) -> OptimConfig:
    """`optim` with `step_epochs` turned into iteration milestones (every N epochs of this run's data)."""
    if optim.step_epochs is None:
        return optim
    every = optim.step_epochs * batches_per_epoch
    return replace(optim, schedule="multistep", milestones=tuple(range(every, optim.iterations, every)))


class Optimizers:
    """One Adam per network ("generator" and each critic by name), each with its base learning rate."""

    def __init__(self, networks: dict[str, nn.Module], optim: OptimConfig, *, fused: bool) -> None:
        self.optim = optim
        self.base_rates = {
            name: optim.learning_rate if name == "generator" else optim.discriminator_learning_rate for name in networks
        }
        self.by_name = {  # fused Adam (CUDA): one kernel per step instead of one per tensor
            name: torch.optim.Adam(
                network.parameters(),
                lr=self.base_rates[name],
                betas=optim.betas,
                eps=optim.eps,
                weight_decay=optim.weight_decay,
                fused=fused,
            )
            for name, network in networks.items()
        }

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def values(self) -> ValuesView[torch.optim.Optimizer]:
        return self.by_name.values()

    def set_iteration(self, iteration: int) -> None:
        for name, optimizer in self.by_name.items():
            for group in optimizer.param_groups:
                group["lr"] = learning_rate_at(self.base_rates[name], self.optim, iteration)

    def learning_rates(self) -> dict[str, float]:
        return {name: optimizer.param_groups[0]["lr"] for name, optimizer in self.by_name.items()}

    def state_dict(self) -> dict[str, dict]:
        return {name: optimizer.state_dict() for name, optimizer in self.by_name.items()}

    def load_state_dict(self, saved: dict[str, dict]) -> None:
        for name, optimizer in self.by_name.items():
            optimizer.load_state_dict(saved[name])


def finite_gradients(modules: list[nn.Module]) -> bool:
    grads = [p.grad for module in modules for p in module.parameters() if p.grad is not None]
    return not grads or bool(torch.isfinite(torch.stack(torch._foreach_norm(grads))).all())  # one fused norm each


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model for parameters; buffers copied."""
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)
