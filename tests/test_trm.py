"""The TRM family: reference checkpoints load and compute what the reference computes; halting; gradient mode.

`reference_inputs` / `reference_segment` below restate TinyRecursiveModels' `trm.py` inner forward
(forward_dtype float32) in plain torch on the raw state dict: its own RMSNorm, RoPE,
explicit softmax attention, SwiGLU, the mlp_t transpose, the 16-position puzzle padding, H_init/L_init
resets and the segment loop. It shares no code with hrm_edge, so a wrong key, order, norm axis or
cycle count in hrm_edge.model.trm shows up as a logits difference.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from hrm_edge.config import preset
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model import build_model
from hrm_edge.model.checkpoint import load_checkpoint
from hrm_edge.runtime.torch import TorchRunner

PREFIX = "_orig_mod.model.inner."
# tolerance of the restatement check, per segment from the same carry: both run fp32 on CPU and differ only
# in op order (SDPA vs explicit softmax): ~1e-5 on the carry after one segment (12 blocks), on values of
# order 1 (RMS-normalised). Over whole multi-segment runs the recurrence amplifies that rounding (8e-5 on
# logits after 3 segments of these random weights), hence segment-by-segment teacher forcing.
ATOL = 1e-4

ARCH = {"name": "recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1",
        "loss": {"name": "losses@ACTLossHead", "loss_type": "stablemax_cross_entropy"},
        "halt_exploration_prob": 0.1, "halt_max_steps": 2, "H_cycles": 2, "L_cycles": 2, "H_layers": 0,
        "L_layers": 2, "hidden_size": 32, "num_heads": 4, "expansion": 4, "puzzle_emb_ndim": 32,
        "pos_encodings": "rope", "forward_dtype": "bfloat16", "mlp_t": False, "puzzle_emb_len": 16,
        "no_ACT_continue": True}
SEQ, VOCAB, PUZZLES = 900, 12, 7  # the ARC canvas: with RoPE + attention nothing stores the canvas, 30x30 is assumed


def reference_state_dict(arch: dict, seed: int) -> dict[str, torch.Tensor]:
    """Random tensors in the reference's key layout, shapes from its constructors (H_init/L_init bf16)."""
    g = torch.Generator().manual_seed(seed)
    h, e = arch["hidden_size"], arch["expansion"]

    def w(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) / math.sqrt(shape[-1])

    def inter(width: int) -> int:
        return -(round(e * width * 2 / 3) // -256) * 256

    plen = arch["puzzle_emb_len"]
    sd = {"embed_tokens.embedding_weight": torch.randn(VOCAB, h, generator=g) / math.sqrt(h),
          "lm_head.weight": w(VOCAB, h), "q_head.weight": w(2, h), "q_head.bias": torch.randn(2, generator=g),
          "puzzle_emb.weights": torch.randn(PUZZLES, arch["puzzle_emb_ndim"], generator=g),
          "H_init": torch.randn(h, generator=g).bfloat16(), "L_init": torch.randn(h, generator=g).bfloat16()}
    for i in range(arch["L_layers"]):
        p = f"L_level.layers.{i}."
        if arch["mlp_t"]:
            sd[p + "mlp_t.gate_up_proj.weight"] = w(2 * inter(SEQ + plen), SEQ + plen)
            sd[p + "mlp_t.down_proj.weight"] = w(SEQ + plen, inter(SEQ + plen))
        else:
            sd[p + "self_attn.qkv_proj.weight"] = w(3 * h, h)
            sd[p + "self_attn.o_proj.weight"] = w(h, h)
        sd[p + "mlp.gate_up_proj.weight"] = w(2 * inter(h), h)
        sd[p + "mlp.down_proj.weight"] = w(h, inter(h))
    return sd


# ---- the reference forward, restated ------------------------------------------------------------------
def rms(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps)


def swiglu(sd: dict, p: str, x: torch.Tensor) -> torch.Tensor:
    gate, up = F.linear(x, sd[p + "gate_up_proj.weight"]).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, sd[p + "down_proj.weight"])


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    return torch.cat((-x[..., x.shape[-1] // 2:], x[..., : x.shape[-1] // 2]), dim=-1)


def attention(sd: dict, p: str, x: torch.Tensor, heads: int, cos_sin) -> torch.Tensor:
    b, s, h = x.shape
    d = h // heads
    qkv = F.linear(x, sd[p + "qkv_proj.weight"]).view(b, s, 3 * heads, d)
    q, k, v = qkv[:, :, :heads], qkv[:, :, heads:2 * heads], qkv[:, :, 2 * heads:]
    if cos_sin is not None:
        cos, sin = cos_sin
        q = q * cos.unsqueeze(-2) + rotate_half(q) * sin.unsqueeze(-2)
        k = k * cos.unsqueeze(-2) + rotate_half(k) * sin.unsqueeze(-2)
    q, k, v = (t.permute(0, 2, 1, 3) for t in (q, k, v))
    out = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v
    return F.linear(out.permute(0, 2, 1, 3).reshape(b, s, h), sd[p + "o_proj.weight"])


def net(sd: dict, arch: dict, z: torch.Tensor, injection: torch.Tensor, cos_sin) -> torch.Tensor:
    z = z + injection
    for i in range(arch["L_layers"]):
        p = f"L_level.layers.{i}."
        if arch["mlp_t"]:
            zt = z.transpose(1, 2)
            z = rms(zt + swiglu(sd, p + "mlp_t.", zt)).transpose(1, 2)
        else:
            z = rms(z + attention(sd, p + "self_attn.", z, arch["num_heads"], cos_sin))
        z = rms(z + swiglu(sd, p + "mlp.", z))
    return z


def reference_inputs(sd: dict, arch: dict, inputs: torch.Tensor, pids: torch.Tensor):
    """`_input_embeddings` (puzzle vector zero-padded to puzzle_emb_len positions, x sqrt(hidden)) and RoPE."""
    h, plen = arch["hidden_size"], arch["puzzle_emb_len"]
    cos_sin = None
    if arch["pos_encodings"] == "rope":
        d = h // arch["num_heads"]
        inv_freq = 1.0 / (10000.0 ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        freqs = torch.outer(torch.arange(SEQ + plen, dtype=torch.float32), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        cos_sin = emb.cos(), emb.sin()
    x = F.embedding(inputs.to(torch.int32), sd["embed_tokens.embedding_weight"])
    pe = sd["puzzle_emb.weights"][pids]
    pe = F.pad(pe, (0, plen * h - pe.shape[-1]))
    return math.sqrt(h) * torch.cat((pe.view(-1, plen, h), x), dim=-2), cos_sin


def reference_segment(sd: dict, arch: dict, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, cos_sin):
    """The inner forward: H_cycles x (L_cycles latent updates, one answer update) by the one network."""
    for _ in range(arch["H_cycles"]):
        for _ in range(arch["L_cycles"]):
            z_L = net(sd, arch, z_L, z_H + x, cos_sin)
        z_H = net(sd, arch, z_H, z_L, cos_sin)
    q = F.linear(z_H[:, 0], sd["q_head.weight"], sd["q_head.bias"])
    return F.linear(z_H, sd["lm_head.weight"])[:, arch["puzzle_emb_len"]:], q[:, 0], q[:, 1], z_H, z_L


def write_reference_run(folder, arch: dict, seed: int = 3, with_yaml: bool = True) -> tuple[dict, object]:
    sd = reference_state_dict(arch, seed)
    folder.mkdir()
    path = folder / "step_51840"
    torch.save({PREFIX + k: v for k, v in sd.items()}, path)
    if with_yaml:
        (folder / "all_config.yaml").write_text(yaml.safe_dump({"arch": arch, "lr": 1e-4, "ema": True}))
    return sd, path


VARIANTS = {"attention-rope": {}, "mlp_t-no-positions": {"mlp_t": True, "pos_encodings": "none"}}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reference_checkpoint_loads_and_matches_restated_reference_forward(tmp_path, variant: str) -> None:
    arch = {**ARCH, **VARIANTS[variant]}
    sd, path = write_reference_run(tmp_path / "run", arch)
    ck = load_checkpoint(path)
    cfg = ck.config
    assert ck.source_format == "trm-reference" and cfg.family == "trm" and ck.meta["step"] == 51840
    assert (cfg.canvas, cfg.puzzle_emb_len, cfg.H_cycles, cfg.L_cycles, cfg.halt_max_steps, cfg.mlp_t,
            cfg.pos_encodings) == (30, 16, 2, 2, 2, arch["mlp_t"], arch["pos_encodings"])
    rng = np.random.default_rng(0)
    toks = torch.from_numpy(rng.integers(0, VOCAB, (2, SEQ)).astype(np.int32))
    ids = torch.tensor([0, 6])
    model = ck.model
    with torch.no_grad():
        x, cos_sin = reference_inputs(sd, arch, toks, ids)
        ref_carry = sd["H_init"].float().expand_as(x), sd["L_init"].float().expand_as(x)  # all start halted
        carry, halted = model.empty_carry(2), torch.ones(2, dtype=torch.bool)
        seg_logits = []
        for _ in range(arch["halt_max_steps"]):
            want = reference_segment(sd, arch, *ref_carry, x, cos_sin)
            got = model.step(toks, model.puzzle_vectors(ids), *carry, halted)
            for name, w, g in zip(("logits", "q_halt", "q_continue", "z_H", "z_L"), want, got):
                assert (w - g).abs().max() < ATOL, name
            seg_logits.append(want[0])
            # teacher forcing: both go on from the reference's carry, so each segment is checked on its own
            ref_carry = carry = want[3], want[4]
            halted = torch.zeros(2, dtype=torch.bool)
    # later segments changed the answer: skipping a segment or a cycle could not pass the comparison
    assert (seg_logits[0] - seg_logits[-1]).abs().max() > 100 * ATOL


def test_reference_layout_without_yaml_loads_with_notes_and_arch_mismatch_is_refused(tmp_path) -> None:
    sd, path = write_reference_run(tmp_path / "bare", {**ARCH, "mlp_t": True}, with_yaml=False)
    ck = load_checkpoint(path)
    assert ck.config.family == "trm" and ck.config.mlp_t and ck.config.canvas == 30  # canvas from mlp_t's width
    assert any("H_cycles not recorded" in n for n in ck.meta["notes"])
    assert any("puzzle_emb_len not recorded" in n for n in ck.meta["notes"])
    hrm_name = "hrm.hrm_act_v1@HierarchicalReasoningModel_ACTV1"
    _, path2 = write_reference_run(tmp_path / "wrong", {**ARCH, "name": hrm_name})
    with pytest.raises(HrmEdgeError, match="no H_level"):
        load_checkpoint(path2)
    _, path3 = write_reference_run(tmp_path / "singlez", {**ARCH, "name": "recursive_reasoning.trm_singlez@X"})
    with pytest.raises(HrmEdgeError, match="trm_singlez"):
        load_checkpoint(path3)


def test_trm_7m_dense_parameter_count() -> None:
    """The paper's ~7M (puzzle table excluded) and DESIGN.md's exact figure."""
    n = build_model(preset("trm-7m")).count_params()
    assert n["dense"] == 6_829_058
    assert set(n["per_module"]) == {"embed_tokens", "lm_head", "q_head", "puzzle_emb", "L_level"}


def test_info_cli_prints_the_count(cli) -> None:
    r = cli("info", "--preset", "trm-7m")
    assert r.returncode == 0, r.stderr
    assert "6,829,058" in r.stdout and "trm" in r.stdout and "q_halt > 0" in r.stdout


def test_segment_gradient_mode_first_cycles_without_grad_last_full_cycle_with_it() -> None:
    cfg = preset("tiny-trm")
    model = build_model(cfg, seed=0).train()
    seen: list[bool] = []
    model.L_level.register_forward_hook(lambda *_: seen.append(torch.is_grad_enabled()))
    t = torch.randint(0, 12, (2, cfg.seq_len))
    x = model.embed(t, model.puzzle_vectors(torch.tensor([1, 2])))
    z_H, z_L = (c.clone().requires_grad_(True) for c in model.init_carry(x))
    (c_H, c_L), logits, q_halt, _ = model.segment((z_H, z_L), x)
    per_cycle = cfg.L_cycles + 1
    assert seen == [False] * ((cfg.H_cycles - 1) * per_cycle) + [True] * per_cycle
    assert not c_H.requires_grad and not c_L.requires_grad  # the carry leaves the segment detached
    (logits.sum() + q_halt.sum()).backward()
    assert z_H.grad is None and z_L.grad is None, "gradient leaked through the no-grad cycles into the carry"
    for name in ("self_attn.qkv_proj", "mlp.down_proj"):
        assert model.L_level.layers[0].get_submodule(name).weight.grad.abs().sum() > 0
    assert model.embed_tokens.embedding_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("bias,steps", [((1.0, 100.0), 1), ((-1.0, -100.0), 4)])
def test_adaptive_halting_is_q_halt_above_zero(bias: tuple[float, float], steps: int) -> None:
    """TRM halts on q_halt > 0 whatever q_continue says (the ACT v1 rule would give the opposite steps)."""
    model = build_model(dataclasses.replace(preset("tiny-trm"), canvas=10), seed=0).eval()
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.copy_(torch.tensor(bias))
    toks = np.random.default_rng(0).integers(0, 12, (3, model.config.seq_len)).astype(np.int32)
    with TorchRunner.from_model(model) as r:
        res = r.run_act(toks, r.puzzle_vectors(np.array([1, 2, 3])), halt="adaptive")
    assert (res.steps == steps).all()


def test_native_checkpoint_round_trip(tmp_path) -> None:
    cfg = dataclasses.replace(preset("tiny-trm"), mlp_t=True, pos_encodings="none", canvas=10)
    model = build_model(cfg, seed=4)
    from hrm_edge.model.checkpoint import save_checkpoint

    ck = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, train_state={"step": 3}))
    assert ck.source_format == "hrm-edge" and ck.config == cfg
    want, got = model.state_dict(), ck.model.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
