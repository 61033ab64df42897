"""Building blocks of both HRM families, written so they export to basic ONNX ops.

Everything here avoids ops that TensorRT 8.5's ONNX parser rejects (LayerNormalization,
fused attention): norms are written out in elementwise ops and attention is plain
matmul + softmax, which torch's exporter emits for `scaled_dot_product_attention`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def trunc_normal_(tensor: torch.Tensor, std: float = 1.0, lower: float = -2.0, upper: float = 2.0) -> torch.Tensor:
    """Truncated normal whose *resulting* std equals `std` (the JAX convention the reference uses).

    torch's `trunc_normal_` keeps the std of the untruncated normal; HRM's initialisers expect the
    truncated distribution to have the stated std, so the scale is corrected here.
    """
    with torch.no_grad():
        if std == 0:
            return tensor.zero_()
        sqrt2 = math.sqrt(2.0)
        a, b = math.erf(lower / sqrt2), math.erf(upper / sqrt2)
        z = (b - a) / 2
        c = (2 * math.pi) ** -0.5
        pdf_u, pdf_l = c * math.exp(-0.5 * upper**2), c * math.exp(-0.5 * lower**2)
        comp_std = std / math.sqrt(1 - (upper * pdf_u - lower * pdf_l) / z - ((pdf_u - pdf_l) / z) ** 2)
        tensor.uniform_(a, b)
        tensor.erfinv_()
        tensor.mul_(sqrt2 * comp_std)
        tensor.clip_(lower * comp_std, upper * comp_std)
    return tensor


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm without weight, computed in fp32 (as the reference) and cast back."""
    dtype = x.dtype
    x = x.float()
    x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)
    return x.to(dtype)


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm in elementwise ops (fp32 statistics): exports without LayerNormalization (TRT 8.5)."""
    dtype = x.dtype
    xf = x.float()
    mean = xf.mean(-1, keepdim=True)
    centred = xf - mean
    var = centred.square().mean(-1, keepdim=True)
    y = centred * torch.rsqrt(var + eps)
    return (y * weight.float() + bias.float()).to(dtype)


class LayerNorm(nn.Module):
    """Drop-in for nn.LayerNorm (same `weight`/`bias` names) built from basic ops."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_norm(x, self.weight, self.bias, self.eps)


class CastedLinear(nn.Module):
    """Linear layer with truncated-normal init (std 1/sqrt(fan_in)); weights cast to the input dtype."""

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(trunc_normal_(torch.empty(out_features, in_features), std=in_features**-0.5))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.weight.to(x.dtype), bias)


class CastedEmbedding(nn.Module):
    """Embedding table named `embedding_weight` (the reference's name), cast to the forward dtype."""

    def __init__(self, num: int, dim: int, init_std: float, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.embedding_weight = nn.Parameter(trunc_normal_(torch.empty(num, dim), std=init_std))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embedding_weight.to(self.dtype))


def rope_tables(head_dim: int, positions: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables [positions, head_dim] in the "cat(freqs, freqs)" convention of the reference."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(positions, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, S, H, Dh] by the position tables [S, Dh] (computed in the tables' dtype)."""
    dtype = x.dtype
    x = x.to(cos.dtype)
    out = x * cos.unsqueeze(-2) + rotate_half(x) * sin.unsqueeze(-2)
    return out.to(dtype)


class Attention(nn.Module):
    """Non-causal multi-head attention: one fused `qkv_proj`, `o_proj`, no biases (ACT v1)."""

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden // num_heads
        self.qkv_proj = CastedLinear(hidden, 3 * hidden, bias=False)
        self.o_proj = CastedLinear(hidden, hidden, bias=False)

    def forward(self, x: torch.Tensor, cos_sin: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
        b, s, _ = x.shape
        qkv = self.qkv_proj(x).view(b, s, 3 * self.num_heads, self.head_dim)
        q, k, v = qkv.split(self.num_heads, dim=2)
        if cos_sin is not None:
            q, k = apply_rope(q, *cos_sin), apply_rope(k, *cos_sin)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return self.o_proj(out.transpose(1, 2).reshape(b, s, -1))


def swiglu_width(hidden: int, expansion: float) -> int:
    """Intermediate width: round(expansion * hidden * 2/3) rounded up to a multiple of 256."""
    inter = round(expansion * hidden * 2 / 3)
    return -(inter // -256) * 256


class SwiGLU(nn.Module):
    """Gated MLP with one fused `gate_up_proj` and `down_proj`, no biases."""

    def __init__(self, hidden: int, expansion: float) -> None:
        super().__init__()
        self.inter = inter = swiglu_width(hidden, expansion)
        self.gate_up_proj = CastedLinear(hidden, 2 * inter, bias=False)
        self.down_proj = CastedLinear(inter, hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # split by size (the same views as chunk(2)): exports as one Split with constant sizes, which
        # ONNX Runtime's loader turns into two MatMuls (graph/ort_fusions.split_matmuls)
        gate, up = self.gate_up_proj(x).split(self.inter, dim=-1)
        return self.down_proj(F.silu(gate) * up)
