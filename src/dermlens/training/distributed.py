"""Running the same loop on one process or under ``torchrun`` (PyTorch DDP, gloo on CPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> "Distributed":
        """Join the process group when torchrun set WORLD_SIZE > 1; otherwise a single process."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size())

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, find_unused_parameters=False)

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision (stop now, this epoch is best...) shared with every rank."""
        if self.world_size == 1:
            return flag
        import torch.distributed as dist

        value = torch.tensor([int(flag)])
        dist.broadcast(value, src=0)
        return bool(value.item())

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
