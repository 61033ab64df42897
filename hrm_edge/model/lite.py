"""The `lite` family: the first user's simplified HRM (train_arc_full.py), one cycle per segment.

Module and parameter names are the script's own (`token_embedding`, `pos_encoding.pe`,
`h_layers.N.self_attn.in_proj_weight`, `h_to_l`, `halt_predictor`, ...), so its `best.pt` loads
as it is. The encoder layers re-state torch's post-norm `nn.TransformerEncoderLayer` (ReLU) in
basic ops so the graph exports without fused attention or LayerNormalization.

Halting: the script stops all samples at once when `cycle > 0 and mean_batch(p) > 0.9`. Here a
segment reports `q_halt = halt_predictor(...)` (the logit of p) and `q_continue = logit(0.9)`,
so "q_halt > q_continue" is exactly "p > threshold" per sample, and the batch-mean rule is
mean(sigmoid(q_halt)) > threshold; both live in act.py with the other halting rules.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hrm_edge.config import LiteConfig
from hrm_edge.model.base import Carry, HRMBase
from hrm_edge.model.layers import LayerNorm


def sinusoidal_table(rows: int, dim: int) -> torch.Tensor:
    """Fixed positions: sin on even dims, cos on odd dims, base 10000 (the script's PositionalEncoding)."""
    pe = torch.zeros(rows, dim)
    pos = torch.arange(rows, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class PositionalEncoding(nn.Module):
    def __init__(self, dim: int, rows: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(rows, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]].to(x.dtype)


class SelfAttention(nn.Module):
    """nn.MultiheadAttention's parameters (`in_proj_weight`, `in_proj_bias`, `out_proj`) as plain ops."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, s, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, s, d))


class EncoderLayer(nn.Module):
    """Post-norm encoder layer, ReLU feed-forward: torch's TransformerEncoderLayer(norm_first=False)."""

    def __init__(self, cfg: LiteConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.self_attn = SelfAttention(d, cfg.num_heads, cfg.dropout)
        self.linear1 = nn.Linear(d, cfg.ff_dim)
        self.linear2 = nn.Linear(cfg.ff_dim, d)
        self.norm1 = LayerNorm(d, cfg.layer_norm_eps)
        self.norm2 = LayerNorm(d, cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x)))
        ff = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout(ff))


class HRMLite(HRMBase):
    """`HierarchicalReasoningModule`: one segment is one of its reasoning cycles."""

    halt_modes = ("max", "adaptive", "batch-mean")
    min_halt_steps = 2  # the script never stops before the second cycle ("cycle > 0")

    def __init__(self, cfg: LiteConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        d = cfg.hidden_size
        self.token_embedding = nn.Embedding(cfg.vocab_size, d)
        self.pos_encoding = PositionalEncoding(d, cfg.max_len)
        self.h_layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.H_layers)])
        self.l_layers = nn.ModuleList([EncoderLayer(cfg) for _ in range(cfg.L_layers)])
        self.h_to_l = nn.Linear(d, d)
        self.l_to_h = nn.Linear(d, d)
        self.halt_predictor = nn.Linear(2 * d, 1)
        self.output = nn.Linear(d, cfg.vocab_size)
        self.h_norm = LayerNorm(d, cfg.layer_norm_eps)
        self.l_norm = LayerNorm(d, cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.halt_logit_threshold = math.log(cfg.halt_threshold / (1.0 - cfg.halt_threshold))

    def embed(self, tokens: torch.Tensor, puzzle_emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.dropout(self.pos_encoding(self.token_embedding(tokens.long())))

    def init_carry(self, x: torch.Tensor) -> Carry:
        return x, x  # h = l = embedded input

    def segment(self, carry: Carry, x: torch.Tensor) -> tuple[Carry, torch.Tensor, torch.Tensor, torch.Tensor]:
        h, l = carry
        for layer in self.h_layers:
            h = layer(h)
        h = self.h_norm(h)
        l = l + self.h_to_l(h)
        for layer in self.l_layers:
            l = layer(l)
        l = self.l_norm(l)
        h = h + self.l_to_h(l)
        q_halt = self.halt_predictor(torch.cat((h.mean(dim=1), l.mean(dim=1)), dim=-1)).squeeze(-1).float()
        q_cont = torch.full_like(q_halt, self.halt_logit_threshold)
        return (h, l), self.output(l), q_halt, q_cont
