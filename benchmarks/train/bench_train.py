"""Training throughput on this machine: `hrm-edge train` (trainer.train) vs a bare loop of the same step.

Under contention (a shared machine) wall time says little; samples per CPU-second of this process
(one thread) is what an idle core would give, so both are reported. The bare loop is the minimum any ACT v1
trainer must do per step: one `act_train_step` per slot chunk,
the reference loss, backward, Adam-atan2 and the sparse puzzle update, on one fixed batch with no
sampler, logging, checkpoints or evaluation. The trainer runs the same model, batch size and steps
(logging every 10 steps, no eval, one checkpoint at the end). Both are timed after 3 warm-up steps.

    PYTHONPATH=. python benchmarks/train/bench_train.py --preset tiny --canvas 30 --batch 32 --steps 30
    PYTHONPATH=. python benchmarks/train/bench_train.py --preset hrm-6m --canvas 10 --hidden 128 --batch 32

For the lite family the bare loop is train_arc_full.py's step (full forward with batch-mean halting,
CE + 0.01 x halt probability, clip 1.0, AdamW, cosine) and the trainer runs `train_lite`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hrm_edge.config import preset
from hrm_edge.data.build import BuildConfig, build_dataset
from hrm_edge.data.dataset import HrmDataset
from hrm_edge.model import build_model
from hrm_edge.model.act import act_train_step, initial_train_carry
from hrm_edge.train.config import TrainConfig
from hrm_edge.train.loss import act_loss
from hrm_edge.train.optim import AdamAtan2, SparseSignSGD
from hrm_edge.train.trainer import train

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from _tinytrain import pick_tasks  # noqa: E402  (six real small ARC tasks)


def make_data(root: Path, canvas: int) -> Path:
    src = root / "evaluation"
    src.mkdir(parents=True)
    for t in pick_tasks():
        d = {k: [{"input": p.input.tolist(), "output": p.output.tolist()} for p in getattr(t, k)]
             for k in ("train", "test")}
        (src / f"{t.id}.json").write_text(json.dumps(d))
    build_dataset(BuildConfig(sources=[str(src)], out=root / "ds", augment=40, seed=0, canvas=canvas, workers=1))
    return root / "ds"


def bare_loop(model_cfg: dict, data: Path, batch: int, steps: int) -> float:
    ds = HrmDataset(data, "train")
    cfg = preset(model_cfg["preset"])
    for k, v in model_cfg["overrides"].items():
        setattr(cfg, k, v)
    cfg.canvas = int(round(ds.metadata.seq_len ** 0.5))
    if cfg.family == "lite":
        return bare_lite(build_model(cfg, seed=0).train(), ds, batch, steps)
    cfg.num_puzzle_identifiers = ds.metadata.num_puzzle_identifiers
    model = build_model(cfg, seed=0).train()
    model.puzzle_emb.weights.requires_grad_(False)
    opt = AdamAtan2([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    sparse = SparseSignSGD(model.puzzle_emb.weights)
    s = ds.sets["all"]
    rows = np.arange(batch) % s.num_examples
    b = {"inputs": torch.from_numpy(np.asarray(s.inputs[rows], np.int32)),
         "labels": torch.from_numpy(np.asarray(s.labels[rows], np.int32)),
         "puzzle_identifiers": torch.from_numpy(s.puzzle_identifiers[s.example_puzzles[rows]].astype(np.int32))}
    carry = initial_train_carry(model, b)
    t0 = c0 = 0.0
    for i in range(steps + 3):
        if i == 3:
            t0, c0 = time.perf_counter(), time.process_time()
        carry, out = act_train_step(model, carry, b, puzzle_vectors=sparse.rows)
        loss, _ = act_loss(out, carry.data["labels"], carry.halted, carry.steps)
        (loss / batch).backward()
        opt.step()
        sparse.step()
        opt.zero_grad(set_to_none=True)
    return batch * steps / (time.perf_counter() - t0), batch * steps / (time.process_time() - c0)


def bare_lite(model, ds: HrmDataset, batch: int, steps: int) -> tuple[float, float]:
    from hrm_edge.train.lite import lite_forward, lite_loss

    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps + 3)
    s = ds.sets["all"]
    rows = np.arange(batch) % s.num_examples
    x = torch.from_numpy(np.asarray(s.inputs[rows], np.int64))
    y = torch.from_numpy(np.asarray(s.labels[rows], np.int64))
    t0 = c0 = 0.0
    for i in range(steps + 3):
        if i == 3:
            t0, c0 = time.perf_counter(), time.process_time()
        logits, probs = lite_forward(model, x)
        lite_loss(logits, y, probs)[0].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    return batch * steps / (time.perf_counter() - t0), batch * steps / (time.process_time() - c0)


def trainer_run(model_cfg: dict, data: Path, out: Path, batch: int, steps: int) -> float:
    lite = preset(model_cfg["preset"]).family == "lite"
    cfg = TrainConfig(data=str(data), out=str(out), preset=model_cfg["preset"], model=model_cfg["overrides"],
                      steps=steps + 3, batch=batch, log_every=10, eval_every=0, checkpoint_every=0,
                      threads=torch.get_num_threads(), **(dict(optimizer="adamw", lr=3e-4, weight_decay=0.01,
                                                                beta2=0.999, lr_min_ratio=0.0) if lite else {}))
    t = {}
    train(cfg, quiet=True, on_step=lambda s: t.setdefault(s, (time.perf_counter(), time.process_time())))
    return (batch * steps / (t[steps + 3][0] - t[3][0]), batch * steps / (t[steps + 3][1] - t[3][1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--canvas", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=None)
    ap.add_argument("--layers", type=str, default=None, help="H,L layer counts")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    over: dict = {}
    if a.hidden:
        over.update(hidden_size=a.hidden)
        if preset(a.preset).family != "lite":
            over["puzzle_emb_ndim"] = a.hidden
    if a.layers:
        h, l_ = map(int, a.layers.split(","))
        over.update(H_layers=h, L_layers=l_)
    mc = {"preset": a.preset, "overrides": over}
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), a.canvas)
        bare, tr = [], []
        for r in range(a.rounds):  # interleaved, so load changes on a shared machine hit both
            bare.append(bare_loop(mc, data, a.batch, a.steps))
            tr.append(trainer_run(mc, data, Path(tmp) / f"run{r}", a.batch, a.steps))
    bw, bc = max(x[0] for x in bare), max(x[1] for x in bare)
    tw, tc = max(x[0] for x in tr), max(x[1] for x in tr)
    res = {"preset": a.preset, "overrides": over, "canvas": a.canvas, "batch": a.batch, "steps": a.steps,
           "threads": a.threads, "bare_samples_per_s": bw, "trainer_samples_per_s": tw,
           "bare_samples_per_cpu_s": bc, "trainer_samples_per_cpu_s": tc,
           "overhead_pct_cpu": 100 * (bc / tc - 1), "overhead_pct_wall": 100 * (bw / tw - 1)}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
