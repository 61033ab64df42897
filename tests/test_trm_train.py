"""hrm-edge train on the TRM family: bit-identical resume, TRM's halting rule in training and evaluation, the
EMA that evaluation and checkpoints use, freeze_weights, and the reference's puzzle-table reset.

The dataset fixture and run helpers are test_train.py's (six real ARC tasks on an 8x8 canvas, 49 puzzle ids).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import _cfg, _losses, arc_data  # noqa: F401  (arc_data is a fixture)

from hrm_edge.config import preset
from hrm_edge.data.dataset import HrmDataset
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model import build_model
from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from hrm_edge.train.config import TrainConfig
from hrm_edge.train.metrics import read_jsonl
from hrm_edge.train.trainer import build_train_model, eval_subset, evaluate, train

PUZZLES = 49  # identifiers of the arc_data fixture (blank + 6 tasks x 8 augmentations)


def _trm(path: Path, q_bias: tuple[float, float], explore: float, puzzles: int = PUZZLES, seed: int = 3) -> Path:
    """A tiny-trm checkpoint on the 8x8 canvas whose Q head starts at `q_bias` (its weight is zero)."""
    cfg = preset("tiny-trm")
    cfg.canvas, cfg.num_puzzle_identifiers, cfg.halt_exploration_prob = 8, puzzles, explore
    model = build_model(cfg, seed=seed)
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor(q_bias))
        model.puzzle_emb.weights.normal_(generator=torch.Generator().manual_seed(seed))
    return save_checkpoint(path, model)


def _trm_cfg(data: Path, out: Path, init: Path, **kw) -> TrainConfig:
    return _cfg(data, out, **{"preset": None, "init_from": str(init), **kw})


def test_tiny_trm_sigterm_mid_act_then_resume_is_bit_identical(arc_data, tmp_path) -> None:  # noqa: F811
    # q_halt = 2 > 0 from the start, exploration 0.5: the RNG decides which slots are mid-ACT at the cut
    init = _trm(tmp_path / "init.pt", (2.0, -2.0), 0.5)
    kw = dict(micro_batch=4, ema=0.999)  # accumulation and TRM's EMA rate are state too
    full = train(_trm_cfg(arc_data, tmp_path / "full", init, **kw), quiet=True)
    assert full["step"] == 12 and full["stopped_by"] is None

    def sigterm_at_7(step: int) -> None:
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)

    run = tmp_path / "cut"
    cut = train(_trm_cfg(arc_data, run, init, **kw), quiet=True, on_step=sigterm_at_7)
    assert cut["stopped_by"] == signal.SIGTERM and cut["step"] == 7
    state = torch.load(run / "checkpoints" / "step_7.pt", weights_only=True)["train_state"]
    steps = torch.cat([c["steps"] for c in state["carry"]])
    halted = torch.cat([c["halted"] for c in state["carry"]])
    assert ((steps > 0) & ~halted).any() and halted.any(), (steps, halted)
    torch.manual_seed(12345)
    np.random.seed(12345)
    resumed = train(_trm_cfg(arc_data, run, init, **kw), resume=True, quiet=True)
    assert resumed["step"] == 12
    a, b = _losses(tmp_path / "full"), _losses(run)
    assert [r["step"] for r in b] == list(range(1, 13)) and a == b
    assert "q_continue_loss" in a[0] and all(r["q_continue_loss"] == 0.0 for r in a)  # TRM trains no q_continue
    assert read_jsonl(tmp_path / "full" / "eval.jsonl") == read_jsonl(run / "eval.jsonl")
    for name in ("step_12.pt", "best.pt"):
        pa = tmp_path / "full" / ("checkpoints" if name.startswith("step") else "") / name
        pb = run / ("checkpoints" if name.startswith("step") else "") / name
        wa, wb = load_checkpoint(pa), load_checkpoint(pb)
        assert wa.config.family == "trm"
        sa, sb = wa.model.state_dict(), wb.model.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_training_and_evaluation_halt_where_q_halt_is_above_zero(arc_data, tmp_path) -> None:  # noqa: F811
    # q_halt 1 > 0 but < q_continue 3: TRM's rule halts every sample after one segment, ACT v1's never would
    init = _trm(tmp_path / "init.pt", (1.0, 3.0), 0.0)
    train(_trm_cfg(arc_data, tmp_path / "r", init, steps=4, eval_every=4), quiet=True)
    recs = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert [(r["halted"], r["mean_steps"]) for r in recs] == [(8, 1.0)] * 4
    ev = [e for e in read_jsonl(tmp_path / "r" / "eval.jsonl") if not e.get("full")]
    assert [(e["step"], e["mean_steps"]) for e in ev] == [(4, 1.0)]


def test_ema_weights_are_what_evaluation_uses_and_checkpoints_hold(arc_data, tmp_path) -> None:  # noqa: F811
    init = _trm(tmp_path / "init.pt", (2.0, -2.0), 0.5)
    rate = 0.5  # far from 1 so that the EMA visibly differs from the raw weights after a few steps
    run = tmp_path / "r"
    train(_trm_cfg(arc_data, run, init, steps=4, ema=rate, checkpoint_every=1, keep_last=0, eval_every=2),
          quiet=True)
    prev = load_checkpoint(init).model.state_dict()
    table = "puzzle_emb.weights"
    for t in range(1, 5):
        raw = torch.load(run / "checkpoints" / f"step_{t}.pt", weights_only=True)["train_state"]["raw_model"]
        ema = load_checkpoint(run / "checkpoints" / f"step_{t}.pt").model.state_dict()
        assert torch.equal(ema[table], raw[table])  # the puzzle table is not averaged (the reference's is a buffer)
        dense = [k for k in ema if k != table and ema[k].is_floating_point() and k not in ("H_init", "L_init")]
        for k in dense:
            torch.testing.assert_close(ema[k], prev[k] + (1 - rate) * (raw[k] - prev[k]), atol=1e-6, rtol=0)
        assert any(not torch.equal(ema[k], raw[k]) for k in dense), t
        prev = ema
    ds = HrmDataset(arc_data, "test")
    rows = eval_subset(ds, 8, 0)
    logged = {e["step"]: e for e in read_jsonl(run / "eval.jsonl") if not e.get("full")}
    for t in (2, 4):
        ema_model = load_checkpoint(run / "checkpoints" / f"step_{t}.pt").model
        got = evaluate(ema_model, ds, rows, 8, torch.device("cpu"), "stablemax")
        rec = dict(logged[t])
        assert rec.pop("split") == "test"
        assert {"step": t, **got} == pytest.approx(rec, rel=1e-6)
        raw_model = load_checkpoint(run / "checkpoints" / f"step_{t}.pt").model
        raw_model.load_state_dict(torch.load(run / "checkpoints" / f"step_{t}.pt",
                                             weights_only=True)["train_state"]["raw_model"])
        assert evaluate(raw_model, ds, rows, 8, torch.device("cpu"), "stablemax")["lm_loss"] != \
            pytest.approx(logged[t]["lm_loss"], rel=1e-6)
    best = torch.load(run / "best.pt", weights_only=True)
    at = torch.load(run / "checkpoints" / f"step_{best['train_state']['step']}.pt", weights_only=True)
    assert all(torch.equal(best["model"][k], at["model"][k]) for k in at["model"])


def test_freeze_weights_trains_only_the_puzzle_rows(arc_data, tmp_path) -> None:  # noqa: F811
    init = _trm(tmp_path / "init.pt", (2.0, -2.0), 0.5)
    cfg = dict(steps=4, freeze_weights=True, eval_every=0, lr=1e-2)
    cut = train(_trm_cfg(arc_data, tmp_path / "r", init, **cfg), quiet=True,
                on_step=lambda step: step == 2 and os.kill(os.getpid(), signal.SIGTERM))
    assert cut["step"] == 2  # resuming restores an optimizer that holds no dense weight
    assert train(_trm_cfg(arc_data, tmp_path / "r", init, **cfg), resume=True, quiet=True)["step"] == 4
    before = load_checkpoint(init).model.state_dict()
    after = load_checkpoint(tmp_path / "r" / "checkpoints" / "step_4.pt").model.state_dict()
    frozen = [k for k in before if k != "puzzle_emb.weights"]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    moved = (before["puzzle_emb.weights"] != after["puzzle_emb.weights"]).any(-1)
    assert moved.sum() >= 8 and not moved[0]  # the batch's rows moved; the blank row is never drawn
    with pytest.raises(HrmEdgeError, match="no.*puzzle|has none"):
        train(_cfg(arc_data, tmp_path / "none", preset="tiny-trm", model={"puzzle_emb_ndim": 0, "puzzle_emb_len": 0},
                   steps=1, freeze_weights=True), quiet=True)


def test_loaded_table_of_another_shape_starts_every_row_at_the_trained_mean(arc_data, tmp_path) -> None:  # noqa: F811
    ds = HrmDataset(arc_data, "train")
    for have in (16, 60):  # fewer and more rows than the dataset's 49: the reference reshapes either way
        init = _trm(tmp_path / f"init{have}.pt", (0.0, 0.0), 0.1, puzzles=have)
        old = load_checkpoint(init).model.puzzle_emb.weights.detach()
        model = build_train_model(_trm_cfg(arc_data, tmp_path / "x", init), ds)
        w = model.puzzle_emb.weights.detach()
        assert w.shape == (PUZZLES, old.shape[1]) and model.config.num_puzzle_identifiers == PUZZLES
        # the reference's load_checkpoint: torch.mean(puzzle_emb, dim=0) over every row, the blank row 0 too
        assert torch.equal(w, old.mean(0, keepdim=True).expand_as(w))
        assert (old.mean(0) - old[1:].mean(0)).abs().max() > 1e-3  # row 0 is random here: leaving it out shows
    same = _trm(tmp_path / "same.pt", (0.0, 0.0), 0.1)  # the same shape loads as it is
    assert torch.equal(build_train_model(_trm_cfg(arc_data, tmp_path / "x", same), ds).puzzle_emb.weights,
                       load_checkpoint(same).model.puzzle_emb.weights)


def test_cli_freeze_weights_flag_reaches_the_run_and_its_config(cli, arc_data, tmp_path) -> None:  # noqa: F811
    init = _trm(tmp_path / "init.pt", (2.0, -2.0), 0.5)
    r = cli("train", "--data", str(arc_data), "--init-from", str(init), "--out", str(tmp_path / "a"), "--steps", "2",
            "--batch", "8", "--eval-every", "0", "--log-every", "1", "--threads", "1", "--freeze-weights",
            "--ema", "0.999", "-q")
    assert r.returncode == 0, r.stderr
    toml = (tmp_path / "a" / "config.toml").read_text()
    assert "freeze_weights = true" in toml and "ema = 0.999" in toml and "mlp_t = false" in toml
    before = load_checkpoint(init).model.state_dict()
    after = load_checkpoint(tmp_path / "a" / "checkpoints" / "step_2.pt").model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k != "puzzle_emb.weights")
    assert not torch.equal(before["puzzle_emb.weights"], after["puzzle_emb.weights"])
