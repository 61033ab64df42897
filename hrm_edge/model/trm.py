"""The Tiny Recursive Model (TRM, SamsungSAILMontreal/TinyRecursiveModels `trm.py`), one ACT segment at a time.

TRM keeps ACT v1's embedding, heads, initial carry and blocks (`ActV1Base`, `ReasoningModule` of
hrm.py) and drops the hierarchy: ONE network `L_level` does both updates. A cycle is

    n times:  z_L = net(z_L, z_H + x)      (latent reasoning)
    once:     z_H = net(z_H, z_L)          (answer update)

and a segment runs T = H_cycles such cycles: the first T-1 without gradient, the last one fully
back-propagated (HRM back-propagates only its final L and H call). The gradient mode lives here, in
`segment`, so a trainer needs no TRM case: it calls `segment` and back-propagates what comes out.

Halting: the reference trains only q_halt (`no_ACT_continue`), so a sample wants to halt where
q_halt > 0; the Q head still has two outputs and both are reported. The rule is the family's
`adaptive_rule`, applied by `act.halt_mask` like every other family's.
"""

from __future__ import annotations

import torch

from hrm_edge.config import TrmConfig
from hrm_edge.model.base import Carry
from hrm_edge.model.hrm import ActV1Base, ReasoningModule


class TRM(ActV1Base):
    """TRM inner model: module names match the reference's `model.inner.*` keys (`L_level` only)."""

    halt_modes = ("max", "adaptive")
    min_halt_steps = 1
    adaptive_rule = "q_halt>0"

    def __init__(self, cfg: TrmConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self._build_io(cfg)
        self.L_level = ReasoningModule(cfg, cfg.L_layers, mlp_t=cfg.mlp_t)
        self._build_state(cfg)

    def cycle(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor,
              cos_sin: tuple[torch.Tensor, torch.Tensor] | None) -> Carry:
        """One recursion: n latent updates, then one answer update, all by the same network."""
        for _ in range(self.config.L_cycles):
            z_L = self.L_level(z_L, z_H + x, cos_sin)
        z_H = self.L_level(z_H, z_L, cos_sin)
        return z_H, z_L

    def segment(self, carry: Carry, x: torch.Tensor) -> tuple[Carry, torch.Tensor, torch.Tensor, torch.Tensor]:
        """T-1 cycles without gradient, then one full cycle with it; returns the detached carry."""
        cs = self.cos_sin()
        z_H, z_L = carry
        with torch.no_grad():
            for _ in range(self.config.H_cycles - 1):
                z_H, z_L = self.cycle(z_H, z_L, x, cs)
        z_H, z_L = self.cycle(z_H, z_L, x, cs)
        return self.readout(z_H, z_L)
