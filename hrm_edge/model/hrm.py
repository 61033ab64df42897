"""The published HRM, ACT v1 (sapientinc/HRM `hrm_act_v1.py`), one ACT segment at a time.

Read top to bottom: embeddings -> blocks -> reasoning modules -> the shared I/O (`ActV1Base`, which
TRM reuses) -> the segment. Module names match the reference's `model.inner.*` keys so its
checkpoints load by stripping that prefix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hrm_edge.config import FORWARD_DTYPES, ActV1Config, TrmConfig
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model.base import Carry, HRMBase
from hrm_edge.model.layers import (
    Attention,
    CastedEmbedding,
    CastedLinear,
    SwiGLU,
    rms_norm,
    rope_tables,
    trunc_normal_,
)


class PuzzleEmbedding(nn.Module):
    """One learned vector per puzzle identifier (id 0 = blank), zero-initialised.

    The reference trains it with a sparse SignSGD; here it is a plain parameter named `weights`
    so its key matches `model.inner.puzzle_emb.weights`. At export it becomes a graph input.
    """

    def __init__(self, num: int, dim: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weights[ids]


class Block(nn.Module):
    """Post-norm transformer block: x = rms(x + mix(x)); x = rms(x + swiglu(x)).

    `mix` is attention, or with `mlp_t` (TRM's variant) a SwiGLU across the sequence applied to the
    transposed states and normalised over positions, exactly as the reference does.
    """

    def __init__(self, cfg: ActV1Config | TrmConfig, mlp_t: bool = False) -> None:
        super().__init__()
        self.eps = cfg.rms_norm_eps
        self.use_mlp_t = mlp_t
        if mlp_t:
            self.mlp_t = SwiGLU(cfg.seq_len + cfg.puzzle_emb_len, cfg.expansion)
        else:
            self.self_attn = Attention(cfg.hidden_size, cfg.num_heads)
        self.mlp = SwiGLU(cfg.hidden_size, cfg.expansion)

    def forward(self, x: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        if self.use_mlp_t:
            xt = x.transpose(1, 2)
            x = rms_norm(xt + self.mlp_t(xt), self.eps).transpose(1, 2)
        else:
            x = rms_norm(x + self.self_attn(x, cos_sin), self.eps)
        return rms_norm(x + self.mlp(x), self.eps)


class ReasoningModule(nn.Module):
    """A stack of blocks that first adds its input injection (H gets z_L, L gets z_H + x)."""

    def __init__(self, cfg: ActV1Config | TrmConfig, n_layers: int, mlp_t: bool = False) -> None:
        super().__init__()
        self.layers = nn.ModuleList([Block(cfg, mlp_t) for _ in range(n_layers)])

    def forward(self, z: torch.Tensor, injection: torch.Tensor,
                cos_sin: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        z = z + injection
        for layer in self.layers:
            z = layer(z, cos_sin)
        return z


class ActV1Base(HRMBase):
    """Input embedding, heads and initial carry shared by ACT v1 and TRM (TRM kept HRM's verbatim).

    Subclasses call `_build_io` first, then build their reasoning modules, then `_build_state`: the
    reference's construction order, so a seed gives the same initial weights as the reference.
    """

    def _build_io(self, cfg: ActV1Config | TrmConfig) -> None:
        self.dtype = getattr(torch, cfg.forward_dtype)
        self.embed_scale = math.sqrt(cfg.hidden_size)
        std = 1.0 / self.embed_scale
        self.embed_tokens = CastedEmbedding(cfg.vocab_size, cfg.hidden_size, std, self.dtype)
        self.lm_head = CastedLinear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.q_head = CastedLinear(cfg.hidden_size, 2, bias=True)
        if cfg.puzzle_emb_ndim > 0:
            self.puzzle_emb = PuzzleEmbedding(cfg.num_puzzle_identifiers, cfg.puzzle_emb_ndim)
        positions = cfg.seq_len + cfg.puzzle_emb_len
        if cfg.pos_encodings == "rope":
            cos, sin = rope_tables(cfg.hidden_size // cfg.num_heads, positions, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        elif cfg.pos_encodings == "learned":
            self.embed_pos = CastedEmbedding(positions, cfg.hidden_size, std, self.dtype)

    def _build_state(self, cfg: ActV1Config | TrmConfig) -> None:
        # drawn in the forward dtype as the reference does (a bf16 model's seed gives the reference's bf16
        # values), kept as fp32 buffers holding them exactly, so switching the forward dtype changes nothing
        for name in ("H_init", "L_init"):
            init = trunc_normal_(torch.empty(cfg.hidden_size, dtype=self.dtype), std=1.0).float()
            self.register_buffer(name, init, persistent=True)
        with torch.no_grad():  # the Q head starts by predicting "do not halt" (bias -5)
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)  # type: ignore[union-attr]

    def set_forward_dtype(self, name: str) -> None:
        """Compute in `name`: "float32", or "bfloat16", the references' forward (their default).

        bfloat16 is what sapientinc/HRM and TinyRecursiveModels train and evaluate in: the embeddings are
        cast to bf16, so the carry, every block and the heads run in bf16 with the fp32 weights cast per
        use; RMSNorm and RoPE compute in fp32 and cast back; the Q values leave as fp32. Nothing else
        changes (the weights stay fp32), so a model switches back and forth freely.
        """
        if name not in FORWARD_DTYPES:
            raise HrmEdgeError(f"forward dtype must be one of {', '.join(FORWARD_DTYPES)}, got {name!r}")
        self.config.forward_dtype = name  # type: ignore[attr-defined]
        self.dtype = getattr(torch, name)
        for m in self.modules():
            if isinstance(m, CastedEmbedding):
                m.dtype = self.dtype

    # -- embedding -----------------------------------------------------------------------------
    def puzzle_vectors(self, puzzle_ids: torch.Tensor) -> torch.Tensor | None:
        if self.config.puzzle_emb_ndim == 0:  # type: ignore[attr-defined]
            return None
        return self.puzzle_emb(puzzle_ids)

    def embed(self, tokens: torch.Tensor, puzzle_emb: torch.Tensor | None) -> torch.Tensor:
        """Token embedding, puzzle vectors prepended as extra positions, scaled by sqrt(hidden)."""
        cfg = self.config
        x = self.embed_tokens(tokens.long())
        if cfg.puzzle_emb_ndim > 0:  # type: ignore[attr-defined]
            if puzzle_emb is None:
                raise ValueError("this model needs puzzle embedding vectors")
            pe = puzzle_emb.to(self.dtype)
            pad = cfg.puzzle_emb_len * cfg.hidden_size - pe.shape[-1]  # type: ignore[attr-defined]
            if pad > 0:
                pe = F.pad(pe, (0, pad))
            x = torch.cat((pe.view(-1, cfg.puzzle_emb_len, cfg.hidden_size), x), dim=-2)  # type: ignore[attr-defined]
        if cfg.pos_encodings == "learned":  # type: ignore[attr-defined]
            x = 0.707106781 * (x + self.embed_pos.embedding_weight.to(self.dtype))
        return self.embed_scale * x

    def init_carry(self, x: torch.Tensor) -> Carry:
        return self.H_init.to(x.dtype).expand_as(x), self.L_init.to(x.dtype).expand_as(x)

    def cos_sin(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return (self.rope_cos, self.rope_sin) if self.config.pos_encodings == "rope" else None  # type: ignore

    def readout(self, z_H: torch.Tensor, z_L: torch.Tensor) -> tuple[Carry, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Segment outputs: detached carry, logits of the canvas positions, Q values from z_H[:, 0]."""
        logits = self.lm_head(z_H)[:, self.config.puzzle_emb_len:]  # type: ignore[attr-defined]
        q = self.q_head(z_H[:, 0]).float()
        return (z_H.detach(), z_L.detach()), logits, q[..., 0], q[..., 1]


class HRMActV1(ActV1Base):
    """ACT v1 inner model: one segment = H_cycles x (L_cycles x L step, then H step)."""

    halt_modes = ("max", "adaptive")
    min_halt_steps = 1

    def __init__(self, cfg: ActV1Config) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self._build_io(cfg)
        self.H_level = ReasoningModule(cfg, cfg.H_layers)
        self.L_level = ReasoningModule(cfg, cfg.L_layers)
        self._build_state(cfg)

    # -- one ACT segment -------------------------------------------------------------------------
    def segment(self, carry: Carry, x: torch.Tensor) -> tuple[Carry, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Nested cycles; every step but the final L and H one runs without gradient."""
        cfg, cs = self.config, self.cos_sin()
        z_H, z_L = carry
        with torch.no_grad():
            for h in range(cfg.H_cycles):
                for l in range(cfg.L_cycles):
                    if not (h == cfg.H_cycles - 1 and l == cfg.L_cycles - 1):
                        z_L = self.L_level(z_L, z_H + x, cs)
                if h != cfg.H_cycles - 1:
                    z_H = self.H_level(z_H, z_L, cs)
        z_L = self.L_level(z_L, z_H + x, cs)  # one-step gradient
        z_H = self.H_level(z_H, z_L, cs)
        return self.readout(z_H, z_L)
