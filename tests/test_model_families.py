"""Both HRM families: shapes, halting rules, one-step gradient, determinism.

Tolerances: outputs compared within one process on CPU are expected bit-identical where the code
path is identical (seeded init, save/load); cross-implementation comparisons state their atol.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import random_tokens

from hrm_edge.config import preset
from hrm_edge.model import build_model
from hrm_edge.runtime.torch import TorchRunner


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_step_and_act_shapes(name: str, rng: np.random.Generator) -> None:
    model = build_model(preset(name), seed=0).eval()
    cfg = model.config
    b = 3
    t = torch.from_numpy(random_tokens(model, b, rng)[0])
    pe = model.puzzle_vectors(torch.tensor([0, 1, 2]))
    z_H, z_L = model.empty_carry(b)
    logits, q_halt, q_cont, zh, zl = model.step(t, pe, z_H, z_L, torch.ones(b, dtype=torch.bool))
    assert logits.shape == (b, cfg.seq_len, cfg.vocab_size)
    assert q_halt.shape == q_cont.shape == (b,)
    assert zh.shape == zl.shape == (b, cfg.seq_len + cfg.puzzle_emb_len, cfg.hidden_size)
    with TorchRunner.from_model(model) as r:
        res = r.run_act(t.numpy(), None if pe is None else pe.detach().numpy(), halt="max")
    assert res.logits.shape == (b, cfg.seq_len, cfg.vocab_size)
    assert res.predictions.shape == (b, cfg.seq_len)


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_halt_max_runs_every_segment(name: str, rng: np.random.Generator) -> None:
    model = build_model(preset(name), seed=0).eval()
    with TorchRunner.from_model(model) as r:
        res = r.run_act(random_tokens(model, 2, rng)[0], halt="max")
        assert len(r.inference_times) == model.config.max_steps
    assert (res.steps == model.config.max_steps).all()


def _manual_adaptive(model, toks: torch.Tensor, pe) -> tuple[np.ndarray, np.ndarray]:
    """Independent re-statement of adaptive halting: step until q_halt > q_continue per sample."""
    b = toks.shape[0]
    z = model.empty_carry(b)
    halted = torch.ones(b, dtype=torch.bool)
    steps = np.zeros(b, int)
    final = [None] * b
    with torch.no_grad():
        for n in range(1, model.config.max_steps + 1):
            logits, qh, qc, zh, zl = model.step(toks, pe, z[0], z[1], halted)
            halted = torch.zeros(b, dtype=torch.bool)
            z = (zh, zl)
            for i in range(b):
                if final[i] is None and ((n >= model.min_halt_steps and qh[i] > qc[i]) or n == model.config.max_steps):
                    final[i] = logits[i].numpy()
                    steps[i] = n
    return np.stack(final), steps


def test_adaptive_stops_samples_whose_q_halt_exceeds_q_continue(rng: np.random.Generator) -> None:
    model = build_model(preset("tiny"), seed=3).eval()
    with torch.no_grad():  # make the Q head depend on the sample so samples halt at different segments
        model.q_head.weight.normal_(0, 2.0, generator=torch.Generator().manual_seed(0))
        model.q_head.bias.copy_(torch.tensor([0.0, 0.0]))
    toks = torch.from_numpy(random_tokens(model, 8, rng)[0])
    pe = model.puzzle_vectors(torch.arange(8) % 16)
    with torch.no_grad():  # centre q_halt - q_continue of the first segment so about half halt there
        z = model.empty_carry(8)
        _, qh, qc, _, _ = model.step(toks, pe, z[0], z[1], torch.ones(8, dtype=torch.bool))
        model.q_head.bias[0] -= float((qh - qc).median()) - 1e-3
    want_logits, want_steps = _manual_adaptive(model, toks, pe)
    with TorchRunner.from_model(model) as r:
        res = r.run_act(toks.numpy(), pe.detach().numpy(), halt="adaptive")
        resmax = r.run_act(toks.numpy(), pe.detach().numpy(), halt="max")
    np.testing.assert_array_equal(res.steps, want_steps)
    np.testing.assert_array_equal(res.logits, want_logits)
    assert len(set(want_steps.tolist())) > 1, "test must exercise samples halting at different segments"
    assert (resmax.steps == model.config.max_steps).all()
    # q values reported are those of the halting segment, where q_halt > q_continue unless it hit the cap
    early = res.steps < model.config.max_steps
    assert (res.q_halt[early] > res.q_continue[early]).all()


def test_lite_adaptive_never_halts_before_second_cycle(rng: np.random.Generator) -> None:
    model = build_model(preset("tiny-lite"), seed=0).eval()
    with torch.no_grad():
        model.halt_predictor.bias.fill_(20.0)  # p ~ 1 from the first cycle
    with TorchRunner.from_model(model) as r:
        res = r.run_act(random_tokens(model, 3, rng)[0], halt="adaptive")
        res_bm = r.run_act(random_tokens(model, 3, rng)[0], halt="batch-mean")
    assert (res.steps == 2).all() and (res_bm.steps == 2).all()


def test_halt_mode_not_in_family_is_refused(rng: np.random.Generator) -> None:
    from hrm_edge.errors import HrmEdgeError

    model = build_model(preset("tiny"), seed=0).eval()
    with TorchRunner.from_model(model) as r, pytest.raises(HrmEdgeError, match="batch-mean"):
        r.run_act(random_tokens(model, 1, rng)[0], halt="batch-mean")


def test_only_final_L_and_H_step_carry_gradient(rng: np.random.Generator) -> None:
    cfg = preset("tiny")
    model = build_model(cfg, seed=0).train()
    seen: dict[str, list[bool]] = {"H": [], "L": []}
    model.H_level.register_forward_hook(lambda *_: seen["H"].append(torch.is_grad_enabled()))
    model.L_level.register_forward_hook(lambda *_: seen["L"].append(torch.is_grad_enabled()))
    t = torch.from_numpy(random_tokens(model, 2, rng)[0])
    x = model.embed(t, model.puzzle_vectors(torch.tensor([1, 2])))
    z_H, z_L = (c.clone().requires_grad_(True) for c in model.init_carry(x))
    (_, _), logits, q_halt, _ = model.segment((z_H, z_L), x)
    assert seen["L"] == [False] * (cfg.H_cycles * cfg.L_cycles - 1) + [True]
    assert seen["H"] == [False] * (cfg.H_cycles - 1) + [True]
    (logits.sum() + q_halt.sum()).backward()
    assert z_H.grad is None and z_L.grad is None, "gradient leaked through the no-grad cycles into the carry"
    assert model.L_level.layers[0].mlp.down_proj.weight.grad.abs().sum() > 0
    assert model.embed_tokens.embedding_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
def test_same_seed_same_outputs(name: str, rng: np.random.Generator) -> None:
    toks = random_tokens(build_model(preset(name)), 2, rng)[0]
    outs = []
    for _ in range(2):
        model = build_model(preset(name), seed=7).eval()
        with TorchRunner.from_model(model) as r:
            pe = r.puzzle_vectors(np.array([1, 2]))
            outs.append(r.run_act(toks, pe).logits)
    np.testing.assert_array_equal(outs[0], outs[1])
    other = build_model(preset(name), seed=8).eval()
    with TorchRunner.from_model(other) as r:
        assert not np.array_equal(r.run_act(toks, r.puzzle_vectors(np.array([1, 2]))).logits, outs[0])


def test_parameter_counts_of_presets() -> None:
    assert build_model(preset("lite-5.7m")).count_params()["dense"] == 5_667_597
    assert build_model(preset("hrm-6m")).count_params()["dense"] == 5_970_434
    assert build_model(preset("hrm-27m")).count_params()["dense"] == 27_276_290
    for name in ("tiny", "tiny-lite"):
        assert 10_000 < build_model(preset(name)).count_params()["dense"] < 100_000


def test_small_canvas_works(rng: np.random.Generator) -> None:
    from hrm_edge.config import ActV1Config, LiteConfig

    for cfg in (ActV1Config(canvas=10, hidden_size=32, num_heads=2, H_layers=1, L_layers=1, halt_max_steps=2,
                            puzzle_emb_ndim=40, num_puzzle_identifiers=3),
                LiteConfig(canvas=10, hidden_size=32, num_heads=2, H_layers=1, L_layers=1, ff_dim=32, max_cycles=2)):
        model = build_model(cfg, seed=0).eval()
        with TorchRunner.from_model(model) as r:
            res = r.run_act(random_tokens(model, 2, rng)[0], r.puzzle_vectors(np.array([1, 2])))
        assert res.logits.shape == (2, 100, 12)
    assert ActV1Config(puzzle_emb_ndim=40, hidden_size=32, num_heads=2).puzzle_emb_len == 2


def test_q_halt_equal_to_q_continue_does_not_halt() -> None:
    """The adaptive rule is q_halt > q_continue, strictly: a tie continues, on the host (numpy), in torch,
    in the exported loop graph, and in the driver. A freshly initialised ACT v1 Q head (weight 0, both
    biases -5, as published) ties on every input, so adaptive runs every segment, like `--halt max`."""
    import onnxruntime as ort

    from hrm_edge.export.onnx import ExportOptions, export_onnx
    from hrm_edge.model.act import halt_mask

    qh, qc = np.array([0.5, 0.5, 0.6], np.float32), np.array([0.5, 0.6, 0.5], np.float32)
    want = [False, False, True]
    assert halt_mask("adaptive", 2, qh, qc, max_steps=8, min_steps=1).tolist() == want
    assert halt_mask("adaptive", 2, torch.from_numpy(qh), torch.from_numpy(qc), 8, 1).tolist() == want
    model = build_model(dataclasses.replace(preset("tiny"), canvas=10), seed=0).eval()
    assert (model.q_head.weight == 0).all() and model.q_head.bias.tolist() == [-5.0, -5.0]
    tokens, pe = random_tokens(model, 3, np.random.default_rng(0))
    with TorchRunner.from_model(model) as r:
        res = r.run_act(tokens, pe, halt="adaptive")
    assert (res.q_halt == res.q_continue).all() and (res.steps == model.config.max_steps).all()
    loop = export_onnx(model, ExportOptions(act="loop", halt="adaptive")).model
    sess = ort.InferenceSession(loop.SerializeToString(), providers=["CPUExecutionProvider"])
    out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"tokens": tokens, "puzzle_emb": pe})))
    assert (out["steps"] == model.config.max_steps).all()
