"""hrm-edge train: bit-identical resume after SIGTERM mid-ACT, the reference's loss and optimizers on
hand-computed cases, learning on real ARC tasks, checkpoint files, and bad input."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from _tinytrain import build_pick_dataset

from hrm_edge.config import preset
from hrm_edge.model import build_model
from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from hrm_edge.train.config import TrainConfig
from hrm_edge.train.loss import act_loss, stablemax_cross_entropy
from hrm_edge.train.metrics import TIMING_KEYS, read_jsonl
from hrm_edge.train.optim import AdamAtan2, SparseSignSGD, lr_at
from hrm_edge.train.trainer import train

TIMING = TIMING_KEYS  # measured, so never compared


@pytest.fixture(scope="module")
def arc_data(tmp_path_factory) -> Path:
    """Six real ARC-AGI-1 tasks on an 8x8 canvas, 7 augmentations each; their test pairs form test/."""
    return build_pick_dataset(tmp_path_factory.mktemp("arc"), augment=7)


def _cfg(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), preset="tiny", steps=12, batch=8, lr=1e-3, log_every=1,
                eval_every=4, eval_samples=8, checkpoint_every=0, threads=1)
    return TrainConfig(**{**base, **kw})


def _losses(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(run / "metrics.jsonl")]


def _eager_halter(path: Path) -> Path:
    """tiny with q_halt > q_continue from the start and exploration 0.5: samples halt after 1 segment
    unless exploration drew a longer minimum, so the RNG decides which slots are mid-ACT."""
    cfg = preset("tiny")
    cfg.canvas, cfg.num_puzzle_identifiers, cfg.halt_exploration_prob = 8, 49, 0.5
    model = build_model(cfg, seed=3)
    with torch.no_grad():
        model.q_head.bias.copy_(torch.tensor([2.0, -2.0]))
    return save_checkpoint(path, model)


def test_sigterm_mid_act_then_resume_logs_the_uninterrupted_losses(arc_data, tmp_path) -> None:
    init = str(_eager_halter(tmp_path / "init.pt"))
    kw = dict(micro_batch=4, ema=0.9, preset=None, init_from=init)  # accumulation and EMA are state too
    full = train(_cfg(arc_data, tmp_path / "full", **kw), quiet=True)
    assert full["step"] == 12 and full["stopped_by"] is None

    def sigterm_at_7(step: int) -> None:
        if step == 7:
            os.kill(os.getpid(), signal.SIGTERM)  # through the real handler, as `kill` would

    run = tmp_path / "cut"
    cut = train(_cfg(arc_data, run, **kw), quiet=True, on_step=sigterm_at_7)
    assert cut["stopped_by"] == signal.SIGTERM and cut["step"] == 7
    state = torch.load(run / "checkpoints" / "step_7.pt", weights_only=True)["train_state"]
    steps = torch.cat([c["steps"] for c in state["carry"]])
    halted = torch.cat([c["halted"] for c in state["carry"]])
    assert ((steps > 0) & ~halted).any() and halted.any(), (steps, halted)  # some slots mid-ACT, some free
    torch.manual_seed(12345)  # a new process would start from other generator states
    np.random.seed(12345)
    resumed = train(_cfg(arc_data, run, **kw), resume=True, quiet=True)
    assert resumed["step"] == 12
    a, b = _losses(tmp_path / "full"), _losses(run)
    assert [r["step"] for r in b] == list(range(1, 13))
    assert a == b  # every loss term, accuracy and lr, exactly
    assert read_jsonl(tmp_path / "full" / "eval.jsonl") == read_jsonl(run / "eval.jsonl")
    wa = load_checkpoint(tmp_path / "full" / "checkpoints" / "step_12.pt").model.state_dict()
    wb = load_checkpoint(run / "checkpoints" / "step_12.pt").model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_training_on_real_arc_tasks_learns(arc_data, tmp_path) -> None:
    train(_cfg(arc_data, tmp_path / "r", steps=80, batch=16, log_every=10, eval_every=40), quiet=True)
    recs = read_jsonl(tmp_path / "r" / "metrics.jsonl")
    assert recs[-1]["loss"] < 0.8 * recs[0]["loss"], [r["loss"] for r in recs]
    assert recs[-1]["token_accuracy"] > recs[0]["token_accuracy"] + 0.1, [r["token_accuracy"] for r in recs]
    ev = [e for e in read_jsonl(tmp_path / "r" / "eval.jsonl") if not e.get("full")]  # the subset's
    assert [e["step"] for e in ev] == [40, 80] and all(0 <= e["exact_accuracy"] <= 1 for e in ev)
    side = json.loads((tmp_path / "r" / "best.json").read_text())
    best = max(ev, key=lambda e: (e["exact_accuracy"], e["token_accuracy"]))
    assert side["step"] == best["step"] and side["data_fingerprint"]
    ck = load_checkpoint(tmp_path / "r" / "best.pt")  # the loader export and solve use
    meta = json.loads((arc_data / "train" / "dataset.json").read_text())
    assert ck.config.canvas == 8 and ck.config.num_puzzle_identifiers == meta["num_puzzle_identifiers"] == 49


def test_keep_last_and_resume_refuses_a_changed_run(arc_data, tmp_path) -> None:
    train(_cfg(arc_data, tmp_path / "k", steps=8, checkpoint_every=2, keep_last=2, eval_every=0), quiet=True)
    assert sorted(p.name for p in (tmp_path / "k" / "checkpoints").glob("*.pt")) == ["step_6.pt", "step_8.pt"]
    from hrm_edge.errors import HrmEdgeError

    with pytest.raises(HrmEdgeError, match="batch"):
        train(_cfg(arc_data, tmp_path / "k", steps=10, batch=4, eval_every=0), resume=True, quiet=True)
    with pytest.raises(HrmEdgeError, match="not empty"):
        train(_cfg(arc_data, tmp_path / "k", steps=10, eval_every=0), quiet=True)


# --------------------------------------------------------------------------- hand-computed pieces
def test_sparse_sign_sgd_moves_only_the_batch_rows() -> None:
    table = torch.nn.Parameter(torch.arange(24, dtype=torch.float32).view(6, 4) / 10, requires_grad=False)
    before = table.detach().clone()
    opt = SparseSignSGD(table, lr=0.5, weight_decay=0.1)
    ids = torch.tensor([1, 3, 3])
    rows = opt.rows(ids)
    (rows * torch.tensor([[1.0, -1, 0, 2], [1, 1, 1, -1], [-3, 1, 1, 1]])).sum().backward()
    opt.step()
    g = {1: torch.tensor([1.0, -1, 0, 2]), 3: torch.tensor([-2.0, 2, 2, 0])}  # row 3: two uses summed
    for r in range(6):
        want = before[r] * (1 - 0.5 * 0.1) - 0.5 * torch.sign(g[r]) if r in g else before[r]
        assert torch.allclose(table[r], want), r
    assert table.grad is None


def test_adam_atan2_matches_the_reference_update() -> None:
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    p0 = p.detach().clone()
    opt = AdamAtan2([p], lr=0.01, betas=(0.9, 0.95), weight_decay=0.1)
    m = v = torch.zeros(5, dtype=torch.float64)
    want = p0.clone()
    for t in range(1, 4):
        g = torch.randn(5, dtype=torch.float64)
        p.grad = g.clone()
        opt.step()
        want = want * (1 - 0.01 * 0.1)
        m, v = 0.9 * m + 0.1 * g, 0.95 * v + 0.05 * g * g
        want = want - 0.01 / (1 - 0.9**t) * torch.atan2(m, v.sqrt() / math.sqrt(1 - 0.95**t))
    assert torch.allclose(p.detach(), want, atol=1e-12)


def test_stablemax_loss_and_act_loss_terms() -> None:
    logits = torch.tensor([[[1.0, -1.0, 0.0], [2.0, 0.5, -3.0]]])  # batch 1, 2 tokens, vocab 3
    labels = torch.tensor([[2, 0]])  # label 0 is PAD: the second token is ignored
    s = lambda x: 1 / (1 - x) if x < 0 else x + 1  # noqa: E731
    want = -math.log(s(0.0) / (s(1.0) + s(-1.0) + s(0.0)))
    ce = stablemax_cross_entropy(logits, labels, labels != 0)
    assert ce[0, 0].item() == pytest.approx(want) and ce[0, 1].item() == 0
    out = {"logits": logits.repeat(2, 1, 1), "q_halt_logits": torch.tensor([0.3, -0.2]),
           "q_continue_logits": torch.tensor([0.1, 0.4]), "target_q_continue": torch.tensor([0.25, 0.75])}
    lab = torch.tensor([[2, 0], [0, 1]])  # sample 0: argmax is 0, label 2 -> wrong; sample 1: 1 token, wrong
    total, m = act_loss(out, lab, torch.tensor([True, False]), torch.tensor([3, 1]))
    bce = lambda x, y: -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))  # noqa: E731
    lm = want + (-math.log(s(0.5) / (s(2.0) + s(0.5) + s(-3.0))))
    qh = bce(0.3, 0) + bce(-0.2, 0)
    qc = bce(0.1, 0.25) + bce(0.4, 0.75)
    assert total.item() == pytest.approx(lm + 0.5 * (qh + qc), rel=1e-6)
    assert m["count"].item() == 1 and m["steps"].item() == 3 and m["exact_accuracy"].item() == 0
    assert m["q_halt_accuracy"].item() == 0  # q_halt 0.3 >= 0 says "right", the grid is wrong


def test_lr_schedule_warmup_then_cosine_to_min_ratio() -> None:
    assert lr_at(1, 1.0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_at(10, 1.0, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_at(55, 1.0, 10, 100, 0.1) == pytest.approx(0.55)
    assert lr_at(100, 1.0, 10, 100, 0.1) == pytest.approx(0.1)


# --------------------------------------------------------------------------- the command
def test_cli_rejects_bad_options_before_any_work(cli, arc_data, tmp_path) -> None:
    out = tmp_path / "run"
    r = cli("train", "--data", str(arc_data), "--out", str(out), "--steps", "5")
    assert r.returncode == 2 and "exactly one of --preset" in r.stderr and not out.exists()
    r = cli("train", "--data", str(arc_data), "--preset", "tiny", "--out", str(out), "--steps", "5",
            "--batch", "8", "--micro-batch", "3")
    assert r.returncode == 2 and "--micro-batch 3 must divide --batch 8" in r.stderr and not out.exists()
    r = cli("train", "--data", str(tmp_path), "--preset", "tiny", "--out", str(out), "--steps", "5")
    assert r.returncode == 2 and "dataset" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_trains_and_repeats_from_config_toml(cli, arc_data, tmp_path) -> None:
    r = cli("train", "--data", str(arc_data), "--preset", "tiny", "--out", str(tmp_path / "a"), "--steps", "3",
            "--batch", "8", "--log-every", "1", "--eval-every", "0", "--threads", "1", "-q")
    assert r.returncode == 0, r.stderr
    r = cli("train", "--config", str(tmp_path / "a" / "config.toml"), "--out", str(tmp_path / "b"), "-q")
    assert r.returncode == 0, r.stderr
    assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    assert np.isfinite([x["loss"] for x in _losses(tmp_path / "a")]).all()


# --------------------------------------------------------------------------- data parallel (gloo)
def test_two_process_gloo_run_gives_the_one_process_losses_and_saves_once(arc_data, tmp_path) -> None:
    """torchrun --nproc_per_node 2 (gloo on the CPU) against a 1-process run of the same global batch 8
    and micro-batch 4: each rank trains one chunk; gradients are summed, puzzle rows gathered, and
    rank 1 burns rank 0's exploration draws (and vice versa), so the runs agree to float64 round-off
    (tolerance 1e-12 relative on every logged number; weights and the gathered carry exactly)."""
    import subprocess
    import sys

    init = str(_eager_halter(tmp_path / "init.pt"))  # exploration 0.5: the RNG stream matters
    kw = dict(steps=6, micro_batch=4, preset=None, init_from=init, checkpoint_every=3, eval_every=3)
    train(_cfg(arc_data, tmp_path / "one", **kw), quiet=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "hrm_edge.cli", "train", "--data", str(arc_data), "--init-from", init,
                        "--out", str(tmp_path / "two"), "--steps", "6", "--batch", "8", "--micro-batch", "4",
                        "--lr", "1e-3", "--log-every", "1", "--eval-every", "3", "--eval-samples", "8",
                        "--checkpoint-every", "3", "--threads", "1", "-q"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert [x["step"] for x in b] == list(range(1, 7))  # rank 0 alone logs: each step once
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-12, abs=1e-15), (x["step"], k, x[k], y[k])
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == sorted(
        p.name for p in (tmp_path / "one" / "checkpoints").iterdir())
    assert read_jsonl(tmp_path / "one" / "eval.jsonl") == read_jsonl(tmp_path / "two" / "eval.jsonl")
    for name in ("step_3.pt", "step_6.pt"):
        sa = torch.load(tmp_path / "one" / "checkpoints" / name, weights_only=True)
        sb = torch.load(tmp_path / "two" / "checkpoints" / name, weights_only=True)
        assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"]), name
        ca, cb = sa["train_state"]["carry"], sb["train_state"]["carry"]
        assert len(ca) == len(cb) == 2
        for x, y in zip(ca, cb):
            for k in ("z_H", "z_L", "steps", "halted"):
                assert torch.equal(x[k], y[k]), (name, k)
            assert all(torch.equal(x["data"][k], y["data"][k]) for k in x["data"])


# --------------------------------------------------------------------------- failures a long run meets
def test_micro_batch_auto_backs_off_on_an_injected_out_of_memory_error(arc_data, tmp_path, monkeypatch) -> None:
    """The CUDA out-of-memory error at 8 slots and at the second 4-slot chunk (after the first one ran:
    its carry, gradients and random draws must be undone); auto halves 8 -> 4 -> 2, retries the step,
    and logs the same losses as --micro-batch 2."""
    import hrm_edge.train.trainer as tr

    real, fours = tr.act_train_step, [0]

    def small_memory(model, carry, part, **kw):
        n = part["inputs"].shape[0]
        fours[0] += n == 4
        if n > 4 or (n == 4 and fours[0] == 2):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, carry, part, **kw)

    init = str(_eager_halter(tmp_path / "init.pt"))
    kw = dict(steps=4, preset=None, init_from=init, eval_every=0)
    train(_cfg(arc_data, tmp_path / "fixed", micro_batch=2, **kw), quiet=True)
    monkeypatch.setattr(tr, "act_train_step", small_memory)
    train(_cfg(arc_data, tmp_path / "auto", micro_batch="auto", **kw), quiet=True)
    assert _losses(tmp_path / "auto") == _losses(tmp_path / "fixed")
    ev = read_jsonl(tmp_path / "auto" / "events.jsonl")
    assert [(e["step"], e["event"], e["micro_batch"], e["accumulation"]) for e in ev] == [
        (1, "oom_backoff", 4, 2), (1, "oom_backoff", 2, 4)]  # once per halving, never again
    from hrm_edge.errors import HrmEdgeError

    fours[0] = 0
    with pytest.raises(HrmEdgeError, match="out of memory at micro-batch 4; try --micro-batch auto"):
        train(_cfg(arc_data, tmp_path / "no", micro_batch=4, **kw), quiet=True)


def _nan_at(monkeypatch, calls: set[int]) -> None:
    """act_loss returns a NaN loss on the given (1-based) calls; one call per step at micro = batch."""
    import hrm_edge.train.trainer as tr

    real, n = tr.act_loss, [0]

    def flaky(*a, **kw):
        n[0] += 1
        loss, m = real(*a, **kw)
        return (loss * float("nan"), m) if n[0] in calls else (loss, m)

    monkeypatch.setattr(tr, "act_loss", flaky)


def _opt_steps(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["train_state"]["optimizer"]["state"][0]["step"])


def test_a_nonfinite_loss_skips_its_step(arc_data, tmp_path, monkeypatch) -> None:
    _nan_at(monkeypatch, {3})
    run = tmp_path / "r"
    train(_cfg(arc_data, run, steps=5, eval_every=0, checkpoint_every=1, keep_last=0), quiet=True)
    assert [(e["step"], e["event"]) for e in read_jsonl(run / "events.jsonl")] == [(3, "nonfinite_loss")]
    ck = {n: torch.load(run / "checkpoints" / f"step_{n}.pt", weights_only=True)["model"] for n in (2, 3, 4)}
    assert all(torch.equal(ck[2][k], ck[3][k]) for k in ck[2])  # no update at step 3
    assert not all(torch.equal(ck[3][k], ck[4][k]) for k in ck[3])
    assert [_opt_steps(run / "checkpoints" / f"step_{n}.pt") for n in (2, 3, 4, 5)] == [2, 2, 3, 4]
    recs = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in recs] == [1, 2, 4, 5] and all(math.isfinite(r["loss"]) for r in recs)


def test_k_nonfinite_losses_in_a_row_roll_back_to_the_last_checkpoint(arc_data, tmp_path, monkeypatch) -> None:
    _nan_at(monkeypatch, {5, 6, 7})
    run = tmp_path / "r"
    train(_cfg(arc_data, run, steps=10, eval_every=0, checkpoint_every=4, keep_last=0, nan_rollback=3), quiet=True)
    ev = [(e["step"], e["event"]) for e in read_jsonl(run / "events.jsonl")]
    assert ev == [(5, "nonfinite_loss"), (6, "nonfinite_loss"), (7, "nonfinite_loss"), (7, "rollback")]
    assert read_jsonl(run / "events.jsonl")[-1]["to_step"] == 4
    # steps 1-4 and, after the rollback to step 4, steps 5-10 updated: 10 (no rollback would give 7)
    assert _opt_steps(run / "checkpoints" / "step_10.pt") == 10


_KILL_IN_SAVE = """
import os, signal, sys
import hrm_edge.model.checkpoint as ck
from hrm_edge.train.config import TrainConfig
from hrm_edge.train.trainer import train
real = ck.atomic_write_bytes
def write(path, fn):
    if "step_8" not in str(path):
        return real(path, fn)
    def half(f):
        import io
        buf = io.BytesIO()
        fn(buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 with half of step_8.pt on disk
    return real(path, half)
ck.atomic_write_bytes = write
train(TrainConfig(**eval(sys.argv[1])), quiet=True)
"""


def test_kill_9_during_a_save_leaves_the_previous_checkpoint_loadable(arc_data, tmp_path) -> None:
    import subprocess
    import sys

    kw = dict(steps=10, eval_every=0, checkpoint_every=4, keep_last=2)
    train(_cfg(arc_data, tmp_path / "full", **kw), quiet=True)
    run = tmp_path / "cut"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run([sys.executable, "-c", _KILL_IN_SAVE, repr(vars(_cfg(arc_data, run, **kw)))], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert sorted(p.name for p in (run / "checkpoints").glob("*.pt")) == ["step_4.pt"]
    assert list((run / "checkpoints").glob(".step_8.pt.*.tmp"))  # the half-written file never got the name
    assert load_checkpoint(run / "checkpoints" / "step_4.pt").model is not None
    train(_cfg(arc_data, run, **kw), resume=True, quiet=True)
    assert _losses(run) == _losses(tmp_path / "full")
    assert not list(run.rglob(".*.tmp"))  # the next start removed what the kill left


def test_logged_loss_is_the_window_mean_like_its_terms(arc_data, tmp_path) -> None:
    """`loss` and its terms cover the same steps: with --log-every 3 each is the mean of the 3 steps'
    values a --log-every 1 run logs (the last step's loss alone was logged beside window-mean terms)."""
    kw = dict(steps=6, eval_every=0)
    train(_cfg(arc_data, tmp_path / "every", **kw), quiet=True)
    train(_cfg(arc_data, tmp_path / "window", log_every=3, **kw), quiet=True)
    every, window = _losses(tmp_path / "every"), _losses(tmp_path / "window")
    assert [r["step"] for r in window] == [3, 6]
    for rec in window:
        part = [r for r in every if rec["step"] - 3 < r["step"] <= rec["step"]]
        for k in ("loss", "lm_loss", "q_halt_loss", "q_continue_loss"):
            assert rec[k] == pytest.approx(np.mean([r[k] for r in part]), rel=1e-12), k
        assert rec["loss"] == pytest.approx(rec["lm_loss"] + 0.5 * (rec["q_halt_loss"] + rec["q_continue_loss"]),
                                            rel=1e-12)
    assert len({r["loss"] for r in every}) == 6  # the steps' losses differ, so a last-step value would show


# --------------------------------------------------------------------------- lite: train_arc_full.py's recipe
def _script_model(halt_bias: float):
    from test_checkpoints import ScriptModel  # the script's module as its author wrote it

    torch.manual_seed(0)
    ref = ScriptModel(12, 32, 4, 1, 1, 64, max_cycles=3).eval()  # eval: no dropout; grads still flow
    with torch.no_grad():
        ref.halt_predictor.bias.fill_(halt_bias)
    return ref


def _script_loss(out, tgt, probs):
    """train_arc_full.py's ACTLoss(halt_penalty=0.01), as written there."""
    task = torch.nn.functional.cross_entropy(out.reshape(-1, out.size(-1)), tgt.reshape(-1))
    return task + 0.01 * (sum(p.mean() for p in probs) / len(probs))


def _script_file(path: Path, model, opt=None, sched=None, step: int = 0) -> str:
    torch.save({"model_state_dict": model.state_dict(), "optimizer_state_dict": opt.state_dict() if opt else {},
                "scheduler_state_dict": sched.state_dict() if sched else {}, "epoch": 0, "global_step": 2 * step,
                "config": {"num_heads": 4, "max_cycles": 3, "dropout": 0.0, "seq_len": 64}}, path)
    return str(path)


@pytest.mark.parametrize("halt_bias", [-5.0, 5.0])  # runs every cycle / stops the batch after cycle 2
def test_lite_loss_equals_the_script_formula(arc_data, tmp_path, halt_bias) -> None:
    from hrm_edge.data.dataset import HrmDataset
    from hrm_edge.train.lite import lite_forward, lite_loss

    ref = _script_model(halt_bias)
    model = load_checkpoint(_script_file(tmp_path / "s.pt", ref)).model.train()
    s = next(iter(HrmDataset(str(arc_data), "train").sets.values()))
    x, y = torch.from_numpy(s.inputs[:6].astype(np.int64)), torch.from_numpy(s.labels[:6].astype(np.int64))
    out, probs = ref(x)
    logits, ours = lite_forward(model, x)
    assert len(ours) == len(probs) == (3 if halt_bias < 0 else 2)
    loss, m = lite_loss(logits, y, ours)
    assert loss.item() == pytest.approx(_script_loss(out, y, probs).item(), rel=1e-5)
    # --lite-ignore-pad: the mean cross-entropy of the non-PAD cells only
    lp = torch.log_softmax(out, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)
    want = -lp[y != 0].mean() + 0.01 * (sum(p.mean() for p in probs) / len(probs))
    assert lite_loss(logits, y, ours, ignore_pad=True)[0].item() == pytest.approx(want.item(), rel=1e-5)
    assert (y == 0).any() and abs(want.item() - loss.item()) > 1e-3  # the switch matters on this data


def test_resume_from_a_script_step_file_continues_its_run(arc_data, tmp_path) -> None:
    """Two optimizer steps of the script's loop, saved as hrm_arc_step_4.pt; this trainer runs steps 3-4 and
    lands on the weights of the script's own steps 3-4 on the same batches (AdamW moments and cosine
    position carried over; fp32 tolerance 2e-5)."""
    from hrm_edge.data.dataset import HrmDataset
    from hrm_edge.train.batches import Sampler

    ref = _script_model(-5.0)
    opt = torch.optim.AdamW(ref.parameters(), lr=3e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    ds = HrmDataset(str(arc_data), "train")

    def script_step(b) -> None:
        out, probs = ref(b["inputs"].long())
        _script_loss(out, b["labels"].long(), probs).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        sched.step()

    warm = Sampler(ds, 8, seed=99)
    for _ in range(2):
        script_step(warm.next())
    path = _script_file(tmp_path / "hrm_arc_step_4.pt", ref, opt, sched, step=2)
    lr3 = sched.get_last_lr()[0]
    run = tmp_path / "r"
    train(_cfg(arc_data, run, preset=None, resume_from=path, steps=4, optimizer="adamw", lr=3e-4,
               weight_decay=0.01, beta2=0.999, lr_min_ratio=0.0, eval_every=0, checkpoint_every=1), quiet=True)
    same = Sampler(ds, 8, seed=0)  # the batches the trainer drew (its sampler, --seed 0)
    for _ in range(2):
        script_step(same.next())
    recs = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in recs] == [3, 4] and recs[0]["lr"] == pytest.approx(lr3, rel=1e-12)
    got = torch.load(run / "checkpoints" / "step_4.pt", weights_only=True)
    want = ref.state_dict()
    assert all(torch.allclose(got["model"][k], want[k], atol=2e-5) for k in want), \
        max((got["model"][k] - want[k]).abs().max().item() for k in want)
    assert got["train_state"]["optimizer"]["state"][0]["step"] == 4


def test_cli_lite_run_takes_the_script_recipe_for_unset_options(cli, arc_data, tmp_path) -> None:
    path = _script_file(tmp_path / "hrm_arc_step_0.pt", _script_model(-5.0))
    r = cli("train", "--data", str(arc_data), "--resume-from", path, "--out", str(tmp_path / "r"), "--steps", "2",
            "--batch", "8", "--eval-every", "0", "--log-every", "1", "--threads", "1", "-q")
    assert r.returncode == 0, r.stderr
    toml = (tmp_path / "r" / "config.toml").read_text()
    for line in ('optimizer = "adamw"', "lr = 0.0003", "weight_decay = 0.01", "beta2 = 0.999", "lr_min_ratio = 0.0"):
        assert f"\n{line}\n" in toml, line
    assert [x["step"] for x in read_jsonl(tmp_path / "r" / "metrics.jsonl")] == [1, 2]
    r = cli("train", "--data", str(arc_data), "--resume-from", path, "--out", str(tmp_path / "w"), "--steps", "2",
            "--warmup", "5", "-q")
    assert r.returncode == 2 and "without warmup" in r.stderr and not (tmp_path / "w" / "checkpoints").exists()


# --------------------------------------------------------------------------- the ARC score and new tasks
def test_eval_tasks_pass_at_k_is_what_hrm_edge_solve_scores(cli, arc_data, tmp_path) -> None:
    """pass@1/pass@2 logged by --eval-tasks 3 equal `hrm-edge solve`'s on best.pt for the same 3 tasks."""
    run = tmp_path / "r"
    train(_cfg(arc_data, run, steps=40, batch=16, eval_every=40, eval_tasks=3, full_eval_every=20), quiet=True)
    ev = read_jsonl(run / "eval.jsonl")
    full = [e for e in ev if e.get("full")]
    sub = [e for e in ev if not e.get("full")]
    from hrm_edge.data.dataset import HrmDataset

    n_test = HrmDataset(str(arc_data), "test").num_examples
    assert [e["step"] for e in full] == [20, 40] and all(e["samples"] == n_test > 8 for e in full)  # not the subset
    assert sub[-1]["tasks"] == 3 and 0 <= sub[-1]["pass@1"] <= sub[-1]["pass@2"] <= 1
    src = tmp_path / "three"
    src.mkdir()
    for p in sorted((arc_data.parent / "evaluation").glob("*.json"))[:3]:
        (src / p.name).write_text(p.read_text())
    r = cli("solve", str(src), "--ckpt", str(run / "best.pt"), "--identifiers", str(arc_data / "identifiers.json"),
            "--batch", "16", "--out", str(tmp_path / "sub.json"))
    assert r.returncode == 0, r.stderr
    scores = json.loads((tmp_path / "sub_scores.json").read_text())
    assert (sub[-1]["pass@1"], sub[-1]["pass@2"]) == (scores["summary"]["pass@1"], scores["summary"]["pass@2"])
    # non-PAD accuracy of the voted answers: the same augmentations, puzzle rows, inversion and vote
    assert sub[-1]["answer_token_accuracy"] == pytest.approx(scores["token_accuracy_non_pad"], abs=1e-12)
    assert 0 < scores["token_accuracy_non_pad"] < 1


def test_freeze_trunk_steps_trains_only_the_puzzle_rows_first(arc_data, tmp_path) -> None:
    run = tmp_path / "r"
    train(_cfg(arc_data, run, steps=3, eval_every=0, checkpoint_every=1, keep_last=0, freeze_trunk_steps=2),
          quiet=True)
    init = build_model(load_checkpoint(run / "checkpoints" / "step_1.pt").config, seed=0).state_dict()
    ck = {n: torch.load(run / "checkpoints" / f"step_{n}.pt", weights_only=True)["model"] for n in (2, 3)}
    dense = [k for k in init if k != "puzzle_emb.weights" and init[k].is_floating_point()]
    assert all(torch.equal(ck[2][k], init[k]) for k in dense)
    assert not torch.equal(ck[2]["puzzle_emb.weights"], init["puzzle_emb.weights"])
    assert not all(torch.equal(ck[3][k], init[k]) for k in dense)


def test_lite_run_stopped_by_sigterm_resumes_to_the_same_losses(arc_data, tmp_path) -> None:
    """tiny-lite with dropout 0.1: the dropout RNG, AdamW moments, cosine position and sampler all resume."""
    kw = dict(preset="tiny-lite", steps=6, micro_batch=4, optimizer="adamw", eval_every=3, checkpoint_every=0)
    train(_cfg(arc_data, tmp_path / "full", **kw), quiet=True)

    def sigterm_at_3(step: int) -> None:
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    cut = train(_cfg(arc_data, tmp_path / "cut", **kw), quiet=True, on_step=sigterm_at_3)
    assert cut["stopped_by"] == signal.SIGTERM and cut["step"] == 3
    torch.manual_seed(777)
    train(_cfg(arc_data, tmp_path / "cut", **kw), resume=True, quiet=True)
    a, b = _losses(tmp_path / "full"), _losses(tmp_path / "cut")
    assert [r["step"] for r in b] == list(range(1, 7)) and a == b
    assert read_jsonl(tmp_path / "full" / "eval.jsonl") == read_jsonl(tmp_path / "cut" / "eval.jsonl")
