"""Analytic FLOPs of one ACT segment, so every latency can be read as a fraction of the hardware's peak.

Only matrix products are counted (2 FLOPs per multiply-add): every Linear, and attention's two
activation-by-activation products (Q K^T and P V). Norms, softmax, RoPE and activations are
elementwise and a few percent of the total; leaving them out makes the achieved-GFLOP/s figure a
slight *under*-statement, never an over-statement. The counts follow the model code
(`model/hrm.py`, `model/lite.py`) layer by layer; tests check them against a hand count and
against PyTorch's own `FlopCounterMode`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hrm_edge.model.layers import swiglu_width


@dataclass(frozen=True)
class SegmentFlops:
    """FLOPs of one ACT segment for ONE puzzle, split by kind (multiply by the batch for a call)."""

    linear: int  # weight matmuls of the layer stacks (qkv / in_proj, o_proj, MLP)
    attention: int  # Q K^T and P V, summed over heads
    heads: int  # matmuls outside the layer stacks (lm_head / output, q_head, h_to_l, l_to_h, halt)
    layer_passes: int  # transformer-layer evaluations per segment
    positions: int  # sequence positions each layer sees (canvas + puzzle positions)

    @property
    def total(self) -> int:
        return self.linear + self.attention + self.heads

    @property
    def attention_share(self) -> float:
        return self.attention / self.total

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total, "attention_share": round(self.attention_share, 4)}


def _layer(s: int, d: int, weights: int) -> tuple[int, int]:
    """(linear, attention) FLOPs of one transformer layer: `weights` = d_in x d_out summed over its Linears."""
    return 2 * s * weights, 2 * 2 * s * s * d


def segment_flops(cfg: Any) -> SegmentFlops:
    """FLOPs of one segment of `cfg` (ActV1Config or LiteConfig) for one puzzle."""
    d = cfg.hidden_size
    if cfg.family == "act-v1":
        s = cfg.seq_len + cfg.puzzle_emb_len
        inter = swiglu_width(d, cfg.expansion)
        weights = d * 3 * d + d * d + d * 2 * inter + inter * d  # qkv, o_proj, gate_up, down
        passes = cfg.H_cycles * cfg.L_cycles * cfg.L_layers + cfg.H_cycles * cfg.H_layers
        heads = 2 * s * d * cfg.vocab_size + 2 * d * 2  # lm_head over every carry position, q_head on one
    elif cfg.family == "lite":
        s = cfg.seq_len
        weights = d * 3 * d + d * d + d * cfg.ff_dim + cfg.ff_dim * d  # in_proj, out_proj, linear1, linear2
        passes = cfg.H_layers + cfg.L_layers
        heads = 2 * 2 * s * d * d + 2 * s * d * cfg.vocab_size + 2 * 2 * d  # h_to_l, l_to_h, output, halt
    else:
        raise ValueError(f"unknown family {cfg.family!r}")
    lin, att = _layer(s, d, weights)
    return SegmentFlops(passes * lin, passes * att, heads, passes, s)


__all__ = ["SegmentFlops", "segment_flops"]
