"""Analytic FLOP counts: a hand count for the tiny configs, and PyTorch's own FlopCounterMode on the real forward."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hrm_edge.bench.flops import segment_flops
from hrm_edge.config import preset
from hrm_edge.model.hrm import HRMActV1
from hrm_edge.model.lite import HRMLite


def test_tiny_act_v1_hand_count() -> None:
    # tiny: hidden 32, 2 heads, expansion 2 -> SwiGLU width round(2*32*2/3)=43 -> 256; 1 puzzle position, S = 901
    # weights per layer: qkv 32*96 + o 32*32 + gate_up 32*512 + down 256*32 = 3072 + 1024 + 16384 + 8192 = 28672
    # layer passes: H_cycles*L_cycles*L_layers + H_cycles*H_layers = 2*2*1 + 2*1 = 6
    # linear = 6 * 2*901*28672 = 6 * 51,666,944; attention = 6 * (QK^T + PV = 2 * 2*901*901*32) = 6 * 103,910,528
    # heads: lm_head 2*901*32*12 = 691,968 + q_head 2*32*2 = 128
    f = segment_flops(preset("tiny"))
    assert (f.linear, f.attention, f.heads) == (310_001_664, 623_463_168, 692_096)
    assert f.total == 934_156_928 and f.layer_passes == 6 and f.positions == 901


def test_tiny_lite_hand_count() -> None:
    # tiny-lite: hidden 32, ff 64, 1 H + 1 L layer per segment, S = 900
    # weights per layer: in_proj 32*96 + out_proj 32*32 + linear1 32*64 + linear2 64*32 = 3072+1024+2048+2048 = 8192
    # linear = 2 * 2*900*8192 = 29,491,200; attention = 2 * 2*2*900*900*32 = 207,360,000
    # heads: h_to_l + l_to_h 2*2*900*32*32 = 3,686,400; output 2*900*32*12 = 691,200; halt 2*64 = 128
    f = segment_flops(preset("tiny-lite"))
    assert (f.linear, f.attention, f.heads) == (29_491_200, 207_360_000, 4_377_728)


def test_hrm_6m_matches_issue_figures() -> None:
    # the issue's figure: 379 GFLOP per segment of 8 puzzles, 20 layer passes over 901 positions, attention ~1/3
    f = segment_flops(preset("hrm-6m"))
    assert f.layer_passes == 20 and f.positions == 901
    assert round(8 * f.total / 1e9) == 379
    assert 0.33 < f.attention_share < 0.36


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_matches_torch_flop_counter(name: str) -> None:
    """The model's real forward, counted by PyTorch (math SDPA so attention shows up as bmm)."""
    cfg = preset(name)
    model = (HRMActV1 if cfg.family == "act-v1" else HRMLite)(cfg).eval()
    b = 2
    tokens = torch.randint(0, cfg.vocab_size, (b, cfg.seq_len), dtype=torch.int32)
    pe = torch.zeros(b, cfg.puzzle_emb_ndim) if cfg.puzzle_emb_ndim else None
    z_H, z_L = model.empty_carry(b)
    with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model.step(tokens, pe, z_H, z_L, torch.ones(b, dtype=torch.bool))
    assert fc.get_total_flops() == b * segment_flops(cfg).total
