"""The one interface every HRM family offers to export, runtimes and the solver.

A family turns tokens (+ puzzle-embedding vectors) into an input embedding `x`, starts or
resets a carry `(z_H, z_L)`, and runs ONE ACT segment on it, returning logits and the two
halting logits. `step` composes those into the exact signature of the exported `step` graph,
so PyTorch and every exported runtime are driven by the same host loop (runtime/base.py).
"""

from __future__ import annotations

import torch
from torch import nn

Carry = tuple[torch.Tensor, torch.Tensor]


class HRMBase(nn.Module):
    """Shared surface of the `lite`, `act-v1` and `trm` families."""

    config: object
    #: fewest segments before a sample may halt under `adaptive` / `batch-mean`
    min_halt_steps: int = 1
    #: inference halting modes this family supports
    halt_modes: tuple[str, ...] = ("max", "adaptive")
    #: what `adaptive` halting compares (one of act.ADAPTIVE_RULES)
    adaptive_rule: str = "q_halt>q_continue"

    @property
    def family(self) -> str:
        return self.config.family  # type: ignore[attr-defined]

    @property
    def carry_len(self) -> int:
        """Positions in the carry: puzzle positions + canvas tokens."""
        return self.config.seq_len + self.config.puzzle_emb_len  # type: ignore[attr-defined]

    @property
    def max_steps(self) -> int:
        return self.config.max_steps  # type: ignore[attr-defined]

    def embed(self, tokens: torch.Tensor, puzzle_emb: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def init_carry(self, x: torch.Tensor) -> Carry:
        """The carry a fresh (or just-halted) sample starts from."""
        raise NotImplementedError

    def segment(self, carry: Carry, x: torch.Tensor) -> tuple[Carry, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One ACT segment: (new carry, logits [B,S,V], q_halt [B], q_continue [B])."""
        raise NotImplementedError

    def puzzle_vectors(self, puzzle_ids: torch.Tensor) -> torch.Tensor | None:
        """Rows of the puzzle-embedding table for these identifiers (None for families without one)."""
        return None

    @property
    def forward_dtype(self) -> torch.dtype:
        """The dtype the embeddings, the carry and the blocks compute in (float32 unless the family offers
        the references' bfloat16 forward and it is set)."""
        return getattr(self, "dtype", torch.float32)

    def empty_carry(self, batch: int, dtype: torch.dtype | None = None) -> Carry:
        """Zero carries in the forward dtype (the references' `empty_carry` is in forward_dtype)."""
        dtype = dtype or self.forward_dtype
        shape = (batch, self.carry_len, self.config.hidden_size)  # type: ignore[attr-defined]
        return torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)

    def reset_carry(self, halted: torch.Tensor, carry: Carry, x: torch.Tensor) -> Carry:
        """Rows flagged `halted` restart from the initial carry; the rest keep theirs.

        Under a forward dtype narrower than fp32 (bfloat16) the carry is cast to it: an fp32 carry would
        promote `z + x` to fp32 and every block after it would run in fp32. A bf16 carry that travelled as
        fp32 (the runners' numpy I/O) casts back exactly, so a host-driven bf16 run equals the references'
        bf16 carry bit for bit. A float32 model keeps torch's promotion: a float64 carry runs the blocks in
        float64, which is how export/parity.py's TorchF64Runner measures the fp32 noise floor.
        """
        init_h, init_l = self.init_carry(x)
        if init_h.dtype.itemsize < 4:
            carry = carry[0].to(init_h.dtype), carry[1].to(init_l.dtype)
        flag = halted.view(-1, 1, 1).to(torch.bool)
        return torch.where(flag, init_h, carry[0]), torch.where(flag, init_l, carry[1])

    def step(self, tokens: torch.Tensor, puzzle_emb: torch.Tensor | None, z_H: torch.Tensor,
             z_L: torch.Tensor, halted: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The exported step: reset halted rows, run one segment.

        Returns (logits, q_halt, q_continue, z_H, z_L); this is the `step` graph's signature.
        """
        x = self.embed(tokens, puzzle_emb)
        carry = self.reset_carry(halted, (z_H, z_L), x)
        (z_H, z_L), logits, q_halt, q_cont = self.segment(carry, x)
        return logits, q_halt, q_cont, z_H, z_L

    def count_params(self) -> dict[str, int]:
        """Trainable parameters: dense model vs. the puzzle-embedding table, and per top module."""
        per_module: dict[str, int] = {}
        dense = emb = 0
        for name, p in self.named_parameters():
            n = p.numel()
            top = name.split(".")[0]
            per_module[top] = per_module.get(top, 0) + n
            if top == "puzzle_emb":
                emb += n
            else:
                dense += n
        return {"dense": dense, "puzzle_emb": emb, "per_module": per_module}  # type: ignore[dict-item]
