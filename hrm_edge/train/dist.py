"""Data parallelism for `hrm-edge train` under `torchrun` (gloo on the CPU, NCCL on GPUs).

Every rank builds the same global batch from the same sampler and trains its own contiguous block
of micro-batch chunks (rank r owns chunks r*k .. r*k+k-1, the chunks a 1-process run with the same
--micro-batch would run in that order). After backward the dense gradients are summed across ranks
(one flat all-reduce) and the sparse puzzle-row gradients are all-gathered, so every rank applies
the identical update to identical weights: a 2-process run gives the losses of a 1-process run of
the same global batch and micro-batch. Rank 0 alone logs, evaluates and saves; the ACT carry of
every rank is gathered into its checkpoint in the 1-process chunk order, so any world size resumes it.

With one process (no torchrun) every method is a no-op and nothing is imported from
torch.distributed's process-group machinery.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from hrm_edge.errors import HrmEdgeError


class Dist:
    """The process group of a run (or the 1-process stand-in)."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        self._owns_group = False
        if self.world > 1:
            import torch.distributed as dist

            if device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
                self._owns_group = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def chunk_range(self, chunks: int) -> range:
        """The global micro-batch chunks this rank trains."""
        if chunks % self.world:
            raise HrmEdgeError(f"--batch / --micro-batch = {chunks} chunks cannot be split over {self.world} "
                               "processes; pick a --micro-batch that divides --batch / processes")
        k = chunks // self.world
        return range(self.rank * k, (self.rank + 1) * k)

    def sum_grads(self, params: list[torch.Tensor]) -> None:
        """Sum the dense gradients of all ranks in place (one flat all-reduce)."""
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        off = 0
        for p, g in zip(params, grads):
            n = g.numel()
            p.grad = flat[off:off + n].view_as(g).clone()
            off += n

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) a tensor in place and return it."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t)
        return t

    def any(self, flag: bool) -> bool:
        """True on every rank when any rank says so (a signal that reached one rank stops all)."""
        if self.world == 1:
            return flag
        return bool(self.sum_(torch.tensor([1.0 if flag else 0.0], device=self.device)).item() > 0)

    def gather_cat(self, t: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-shaped tensors of all ranks along dim 0, in rank order."""
        if self.world == 1:
            return t
        import torch.distributed as dist

        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order (on every rank)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self._owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()
