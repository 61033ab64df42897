"""The references' bfloat16 forward and training step (their default dtype), against their formulas restated.

`ref_*` below restate sapientinc/HRM `hrm_act_v1.py` / TinyRecursiveModels `trm.py` with `layers.py` in
bf16, in plain torch on the raw state dict: embeddings cast to bf16 (`CastedEmbedding(cast_to=bf16)`),
every linear with its fp32 weight cast to the input's dtype (`CastedLinear`), RoPE and RMSNorm in fp32 and
cast back, attention by SDPA in bf16 (TinyRecursiveModels' own `layers.py`; HRM's flash-attn is CUDA-only),
a bf16 carry from bf16 `H_init`/`L_init`, and Q values cast to fp32. No hrm_edge code is shared.

Tolerance: exact (0). The restatement runs the same torch ops in the same dtypes, so a cast left out or
added anywhere (the old fp32 carry, which ran every block in fp32) is a difference; the fp32 forward of the
same weights lands > 1e-3 away on logits after one segment. The same comparison against the reference code
itself (CPU, SDPA in place of flash-attn, 8 training steps with halting, exploration, both optimizers) gave
bit-identical carries, halting, gradients and puzzle-row gradients for ACT v1 and TRM (README, `train`).
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from hrm_edge.config import preset
from hrm_edge.model import build_model
from hrm_edge.model.act import act_train_step, initial_train_carry
from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from hrm_edge.runtime.torch import TorchRunner

BF16 = torch.bfloat16
CANVAS = 6


def _model(name: str, seed: int = 0):
    """A small model with random puzzle rows and Q head (the init's zeros and -5 would hide mistakes)."""
    cfg = dataclasses.replace(preset(name), canvas=CANVAS)
    model = build_model(cfg, seed=seed).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        model.puzzle_emb.weights.normal_(generator=g)
        model.q_head.weight.normal_(0.0, 0.3, generator=g)
        model.q_head.bias.zero_()
    return model


# ---- the references' bf16 forward, restated -----------------------------------------------------------
def ref_rms(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    xf = x.to(torch.float32)
    return (xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps)).to(x.dtype)


def ref_linear(sd: dict, key: str, x: torch.Tensor) -> torch.Tensor:
    bias = sd.get(key + ".bias")
    return F.linear(x, sd[key + ".weight"].to(x.dtype), None if bias is None else bias.to(x.dtype))


def ref_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    xf = x.to(cos.dtype)
    rot = torch.cat((-xf[..., half:], xf[..., :half]), dim=-1)
    return (xf * cos.unsqueeze(-2) + rot * sin.unsqueeze(-2)).to(x.dtype)


def ref_block(sd: dict, p: str, x: torch.Tensor, heads: int, cos_sin) -> torch.Tensor:
    b, s, h = x.shape
    qkv = ref_linear(sd, p + "self_attn.qkv_proj", x).view(b, s, 3 * heads, h // heads)
    q, k, v = qkv[:, :, :heads], qkv[:, :, heads:2 * heads], qkv[:, :, 2 * heads:]
    q, k = ref_rope(q, *cos_sin), ref_rope(k, *cos_sin)
    att = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    x = ref_rms(x + ref_linear(sd, p + "self_attn.o_proj", att.reshape(b, s, h)))
    gate, up = ref_linear(sd, p + "mlp.gate_up_proj", x).chunk(2, dim=-1)
    return ref_rms(x + ref_linear(sd, p + "mlp.down_proj", F.silu(gate) * up))


def ref_module(sd: dict, level: str, n: int, z: torch.Tensor, injection: torch.Tensor, heads: int, cs) -> torch.Tensor:
    z = z + injection
    for i in range(n):
        z = ref_block(sd, f"{level}.layers.{i}.", z, heads, cs)
    return z


def ref_inputs(sd: dict, cfg, tokens: torch.Tensor, ids: torch.Tensor):
    h, plen = cfg.hidden_size, cfg.puzzle_emb_len
    x = F.embedding(tokens.to(torch.int32), sd["embed_tokens.embedding_weight"].to(BF16))
    pe = sd["puzzle_emb.weights"][ids].to(BF16)
    pe = F.pad(pe, (0, plen * h - pe.shape[-1]))
    x = math.sqrt(h) * torch.cat((pe.view(-1, plen, h), x), dim=-2)
    d = h // cfg.num_heads
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
    emb = torch.outer(torch.arange(cfg.seq_len + plen, dtype=torch.float32), inv_freq)
    emb = torch.cat((emb, emb), dim=-1)
    return x, (emb.cos(), emb.sin())


def ref_segment(sd: dict, cfg, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, cs):
    """One segment of the reference's inner forward: HRM's H/L cycles, or TRM's one network (L_level)."""
    heads = cfg.num_heads
    if cfg.family == "act-v1":
        for _ in range(cfg.H_cycles):
            for _ in range(cfg.L_cycles):
                z_L = ref_module(sd, "L_level", cfg.L_layers, z_L, z_H + x, heads, cs)
            z_H = ref_module(sd, "H_level", cfg.H_layers, z_H, z_L, heads, cs)
    else:
        for _ in range(cfg.H_cycles):
            for _ in range(cfg.L_cycles):
                z_L = ref_module(sd, "L_level", cfg.L_layers, z_L, z_H + x, heads, cs)
            z_H = ref_module(sd, "L_level", cfg.L_layers, z_H, z_L, heads, cs)
    q = ref_linear(sd, "q_head", z_H[:, 0]).to(torch.float32)
    logits = ref_linear(sd, "lm_head", z_H)[:, cfg.puzzle_emb_len:]
    return logits, q[..., 0], q[..., 1], z_H, z_L


def _inputs(model, b: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    toks = torch.from_numpy(rng.integers(0, 12, (b, model.config.seq_len)).astype(np.int32))
    ids = torch.from_numpy(rng.integers(1, model.config.num_puzzle_identifiers, b))
    return toks, ids


@pytest.mark.parametrize("name", ["tiny", "tiny-trm"])
def test_bf16_forward_is_the_references_bf16_forward_exactly(name: str) -> None:
    model = _model(name)
    cfg = model.config
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    toks, ids = _inputs(model)
    model.set_forward_dtype("bfloat16")
    with torch.no_grad():
        x, cs = ref_inputs(sd, cfg, toks, ids)
        ref = sd["H_init"].to(BF16).expand_as(x), sd["L_init"].to(BF16).expand_as(x)  # all start halted
        carry, halted = model.empty_carry(len(toks)), torch.ones(len(toks), dtype=torch.bool)
        assert carry[0].dtype == BF16  # the reference's empty_carry is in forward_dtype
        for _ in range(cfg.max_steps):
            want = ref_segment(sd, cfg, *ref, x, cs)
            got = model.step(toks, model.puzzle_vectors(ids), *carry, halted)
            for what, w, g in zip(("logits", "q_halt", "q_continue", "z_H", "z_L"), want, got):
                assert w.dtype == g.dtype and torch.equal(w, g), what
            ref, carry, halted = want[3:], got[3:], torch.zeros_like(halted)
        last = want[0]
        # the same weights in fp32 (what the loader gives by default) are measurably elsewhere
        model.set_forward_dtype("float32")
        fp32 = model.step(toks, model.puzzle_vectors(ids), *model.empty_carry(len(toks)), torch.ones_like(halted))[0]
        first = ref_segment(sd, cfg, sd["H_init"].to(BF16).expand_as(x), sd["L_init"].to(BF16).expand_as(x), x, cs)[0]
    assert (fp32 - first.float()).abs().max() > 1e-3
    # the PyTorch runner's bf16 mode: every segment through the host ACT driver (fp32 numpy carry), same logits
    runner = TorchRunner.from_model(model, dtype="bfloat16")
    with runner:
        assert runner.forward_dtype == "bfloat16"
        res = runner.run_act(toks.numpy(), runner.puzzle_vectors(ids.numpy()), halt="max")
    assert np.array_equal(res.logits, last.float().numpy())
    assert model.config.forward_dtype == "float32" and model.forward_dtype == torch.float32  # restored


@pytest.mark.parametrize("name", ["tiny", "tiny-trm"])
def test_bf16_training_step_keeps_a_bf16_carry_and_matches_the_formulas(name: str) -> None:
    """The reference's training step: the carry stays bf16 from segment to segment (an fp32 carry ran every
    block in fp32), halted slots restart at bf16 H_init/L_init, and the gradient reaches the fp32 weights."""
    model = _model(name).train()
    cfg = model.config
    model.set_forward_dtype("bfloat16")
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    toks, ids = _inputs(model, b=4)
    batch = {"inputs": toks, "labels": toks.clone(), "puzzle_identifiers": ids}
    carry = initial_train_carry(model, batch)
    assert carry.z_H.dtype == BF16
    x, cs = ref_inputs(sd, cfg, toks, ids)
    ref = sd["H_init"].to(BF16).expand_as(x), sd["L_init"].to(BF16).expand_as(x)
    for _ in range(2):
        torch.manual_seed(0)
        carry, out = act_train_step(model, carry, batch, exploration_prob=0.0)
        with torch.no_grad():
            want = ref_segment(sd, cfg, *ref, x, cs)
        assert carry.z_H.dtype == BF16 and carry.z_L.dtype == BF16
        assert torch.equal(out["logits"].detach(), want[0]) and torch.equal(carry.z_H, want[3])
        assert torch.equal(carry.z_L, want[4]) and torch.equal(out["q_halt_logits"].detach(), want[1])
        ref = want[3:]
        carry.halted[:] = False  # keep every slot going so the second step runs from the bf16 carry
    out["logits"].float().square().mean().backward()
    w = model.lm_head.weight
    assert w.dtype == torch.float32 and w.grad is not None and w.grad.dtype == torch.float32


def test_bf16_seed_draws_h_init_in_bf16_as_the_reference_does() -> None:
    """H_init/L_init: trunc_normal in the forward dtype (the reference's `torch.empty(..., dtype=forward_dtype)`)."""
    cfg = dataclasses.replace(preset("tiny"), forward_dtype="bfloat16")
    model = build_model(cfg, seed=0)
    for name in ("H_init", "L_init"):
        buf = getattr(model, name)
        assert buf.dtype == torch.float32 and torch.equal(buf, buf.to(BF16).float())  # bf16 values, kept fp32
    fp32 = build_model(dataclasses.replace(cfg, forward_dtype="float32"), seed=0)
    assert not torch.equal(fp32.H_init, model.H_init)


def test_loader_says_what_a_checkpoint_was_trained_in_and_runs_it_in_fp32(tmp_path, cli) -> None:
    """Reference files: all_config.yaml's forward_dtype, else the stored H_init's dtype; native: its config."""
    from test_trm import ARCH, write_reference_run

    _, ref_path = write_reference_run(tmp_path / "ref", ARCH)  # arch says bfloat16
    _, bare_path = write_reference_run(tmp_path / "bare", {**ARCH, "forward_dtype": "float32"}, with_yaml=False)
    fp32_run = tmp_path / "fp32"
    _, fp32_path = write_reference_run(fp32_run, ARCH)
    (fp32_run / "all_config.yaml").write_text(yaml.safe_dump({"arch": {**ARCH, "forward_dtype": "float32"}}))
    model = _model("tiny")
    model.set_forward_dtype("bfloat16")
    native = save_checkpoint(tmp_path / "n.pt", model)
    want = {ref_path: "bfloat16", bare_path: "bfloat16", fp32_path: "float32", native: "bfloat16"}
    for path, dtype in want.items():  # bare: no yaml, H_init stored in bf16 -> trained in bf16
        ck = load_checkpoint(path)
        assert ck.meta["trained_dtype"] == dtype, path
        assert ck.config.forward_dtype == "float32" and ck.model.forward_dtype == torch.float32
    r = cli("info", str(ref_path), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["trained_dtype"] == "bfloat16"
    assert d["dtypes"]["solve, compare"] == "--torch-dtype (default float32; trained: bfloat16)"
    r = cli("info", str(native))
    assert r.returncode == 0 and "trained in" in r.stdout and "bfloat16" in r.stdout


def test_lite_has_no_bf16_mode(tmp_path) -> None:
    from hrm_edge.errors import HrmEdgeError

    model = build_model(dataclasses.replace(preset("tiny-lite"), canvas=CANVAS), seed=0)
    with pytest.raises(HrmEdgeError, match="float32 only"), TorchRunner.from_model(model, dtype="bfloat16"):
        pass


def test_torch_dtype_runs_a_checkpoint_in_the_dtype_it_was_trained_in(tmp_path, cli) -> None:
    """`--torch-dtype trained` (solve, compare) opens a bf16-trained checkpoint in the references' bf16 forward:
    the runner's logits are the bf16 run's, bit for bit, and measurably not the fp32 ones the default gives."""
    from conftest import small_real_tasks, write_tasks

    from hrm_edge.errors import HrmEdgeError
    from hrm_edge.solve.runners import open_runtime

    model = _model("tiny")
    model.set_forward_dtype("bfloat16")
    path = save_checkpoint(tmp_path / "bf16.pt", model)
    toks, ids = _inputs(model)
    logits = {}
    for choice in (None, "trained", "bfloat16"):
        rt = open_runtime("torch", path, device="cpu", dtype=choice)
        with rt.runner:
            logits[choice] = rt.runner.run_act(toks.numpy(), rt.runner.puzzle_vectors(ids.numpy()), halt="max").logits
        assert ("bfloat16" in rt.label) == (choice is not None), rt.label
    with TorchRunner.from_model(model, dtype="bfloat16") as ref:  # the bf16 forward checked above
        want = ref.run_act(toks.numpy(), ref.puzzle_vectors(ids.numpy()), halt="max").logits
    assert np.array_equal(logits["trained"], want) and np.array_equal(logits["bfloat16"], want)
    assert np.abs(logits[None] - want).max() > 1e-3  # the default is fp32, not the trained dtype
    with pytest.raises(HrmEdgeError, match="torch runtime"):
        open_runtime("onnxruntime", tmp_path / "no_bundle", dtype="bfloat16")
    lite = save_checkpoint(tmp_path / "lite.pt", build_model(dataclasses.replace(preset("tiny-lite"), canvas=CANVAS)))
    with pytest.raises(HrmEdgeError, match="float32 only"):
        open_runtime("torch", lite, dtype="bfloat16")
    tasks = write_tasks(tmp_path / "tasks", small_real_tasks(2, max_side=CANVAS))
    r = cli("compare", str(tasks), "--ckpt", str(path), "--torch-dtype", "trained", "--augment", "1",
            "--out-dir", str(tmp_path / "cmp"), "--no-warmup")
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"]
    assert rows[0]["kind"] == "torch" and "bfloat16" in rows[0]["label"], rows[0]
    r = cli("solve", str(tasks), "--ckpt", str(lite), "--torch-dtype", "bfloat16", "--out", str(tmp_path / "s.json"))
    assert r.returncode == 2 and "float32 only" in r.stderr and not (tmp_path / "s.json").exists(), r.stderr
