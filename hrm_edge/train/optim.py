"""Optimizers and the learning-rate schedule of the reference trainer, in plain PyTorch.

- `AdamAtan2`: Adam with `atan2(m, sqrt(v))` in place of `m / (sqrt(v) + eps)` and decoupled weight
  decay, step for step the update of the `adam-atan2` CUDA package the reference uses (whose build
  fails for many users): p *= 1 - lr*wd; m = lerp(m, g, 1-b1); v = lerp(v, g*g, 1-b2);
  p -= lr / (1 - b1^t) * atan2(m, sqrt(v) / sqrt(1 - b2^t)).
- `SparseSignSGD`: the puzzle-embedding table is never given a dense gradient. The rows a step uses
  are handed to the model as fresh leaf tensors (`rows`); after backward the gradients of repeated
  identifiers are summed and only those rows move: p *= 1 - lr*wd; p -= lr * sign(g).
- `lr_at`: linear warmup, then cosine down to `lr_min_ratio` of the base rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch


class AdamAtan2(torch.optim.Optimizer):
    """Adam-atan2 (no epsilon) with decoupled weight decay; see the module docstring for the update."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.95),
                 weight_decay: float = 0.1) -> None:
        if lr < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError("AdamAtan2 needs lr >= 0, weight_decay >= 0 and betas in [0, 1)")
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["step"] = 0
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["step"] += 1
                t = st["step"]
                m, v, g = st["exp_avg"], st["exp_avg_sq"], p.grad
                p.mul_(1 - lr * wd)
                m.lerp_(g, 1 - b1)
                v.lerp_(g * g, 1 - b2)
                denom = v.sqrt() / math.sqrt(1 - b2**t)
                p.add_(torch.atan2(m, denom), alpha=-lr / (1 - b1**t))


class SparseSignSGD:
    """Sign-SGD with decoupled weight decay on the rows of an embedding table that a step used.

    `rows(ids)` returns a leaf copy of those rows for the forward pass and remembers it; `step()`
    applies the update to exactly the rows seen since the last step and forgets them. Its only
    state is the learning rate, so checkpoints need nothing from it but `lr`/`weight_decay`.
    """

    def __init__(self, table: torch.Tensor, lr: float = 1e-2, weight_decay: float = 0.1) -> None:
        self.table, self.lr, self.weight_decay = table, lr, weight_decay
        self._ids: list[torch.Tensor] = []
        self._leaves: list[torch.Tensor] = []

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        leaf = self.table.detach()[ids.long()].clone().requires_grad_(True)
        self._ids.append(ids.long())
        self._leaves.append(leaf)
        return leaf

    @torch.no_grad()
    def step(self, gather: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """Update the rows used since the last step. `gather` concatenates a tensor across data-parallel
        ranks (every rank then applies the same update to the union of the ranks' rows)."""
        pairs = [(i, leaf.grad) for i, leaf in zip(self._ids, self._leaves) if leaf.grad is not None]
        self.zero_grad()
        if not pairs:
            return
        ids = torch.cat([i for i, _ in pairs])
        grads = torch.cat([g for _, g in pairs])
        if gather is not None:
            ids, grads = gather(ids), gather(grads)
        uniq, inv = ids.unique(return_inverse=True)
        g = torch.zeros((uniq.shape[0], grads.shape[1]), dtype=grads.dtype, device=grads.device)
        g.scatter_add_(0, inv.unsqueeze(-1).expand(-1, grads.shape[1]), grads)
        w = self.table.data
        p = w[uniq]
        p.mul_(1.0 - self.lr * self.weight_decay).add_(torch.sign(g), alpha=-self.lr)
        w[uniq] = p.to(w.dtype)

    def zero_grad(self) -> None:
        self._ids.clear()
        self._leaves.clear()


def lr_at(step: int, base_lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """Rate for optimizer step `step` (1-based, as the reference counts): warmup, then cosine to min_ratio."""
    if step < warmup:
        return base_lr * step / max(1, warmup)
    progress = (step - warmup) / max(1, total - warmup)
    return base_lr * (min_ratio + max(0.0, (1 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))))
