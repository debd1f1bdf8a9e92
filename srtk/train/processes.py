"""The process group of a training run: torchrun's ranks, and what they must agree on.

Under torchrun (WORLD_SIZE > 1) every rank trains on its shard of each epoch and gradients are averaged across
ranks after each backward — what DDP does, without wrapping the method's networks, so that methods keep calling
their own modules. One process (no torchrun) is the same code with every collective a no-op.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from srtk.runtime import pick_device


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def join(cls, device_name: str) -> "Processes":
        """Join torchrun's process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU) and pick the device."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        device = pick_device(device_name)
        if world_size <= 1:
            return cls(device=device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank, world_size, local_rank, device)

    def leave(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def broadcast(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers everywhere (ranks are seeded alike; this makes sure)."""
        if self.distributed:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)

    def average_gradients(self, module: nn.Module) -> None:
        """Mean of every gradient over the ranks, in one flat all-reduce (DDP's bucketing, one bucket)."""
        if not self.distributed:
            return
        params = [p for p in module.parameters() if p.requires_grad]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])  # type: ignore[union-attr]
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p in params:
            count = p.numel()
            p.grad.copy_(flat[offset : offset + count].view_as(p.grad))  # type: ignore[union-attr]
            offset += count

    def all_agree(self, flag: bool) -> bool:
        """True only if `flag` holds on every rank (a step is skipped everywhere or nowhere)."""
        if not self.distributed:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MIN)
        return bool(value.item() > 0)

    def any_rank(self, flag: bool) -> bool:
        return not self.all_agree(not flag)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over the ranks (a CPU tensor in, a CPU tensor out)."""
        if not self.distributed:
            return values
        reduced = values.to(self.device)
        dist.all_reduce(reduced)
        return reduced.cpu()
