"""A tiny, honest training run for end-to-end solve tests (seconds on CPU).

The `tiny` ACT v1 preset, on an 8x8 canvas (all grids of the chosen tasks fit), is trained on the
demonstration pairs of a handful of real ARC-AGI-1 training tasks, each under a few augmentations
(identity + dihedral x colour permutations), every task+augmentation with its own puzzle identifier,
exactly as the reference builds its dataset (names `task` and `task_t{k}_{colours}`). The loop is
the ACT v1 training segment (`act_train_step`: carry, halting with exploration, Q target) with the
reference's loss: cross-entropy over non-PAD label tokens, BCE of q_halt against "the whole grid is
right" and of q_continue against the bootstrapped target. The test inputs are never trained on.

Outputs a native checkpoint and `identifiers.json` (the reference's list form) beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hrm_edge.config import preset
from hrm_edge.data.arc import ArcTask, load_tasks
from hrm_edge.data.augment import random_augmentations
from hrm_edge.data.tokens import PAD, encode_grid
from hrm_edge.model import build_model
from hrm_edge.model.act import act_train_step, initial_train_carry
from hrm_edge.model.checkpoint import save_checkpoint
from hrm_edge.solve.solver import identifier_name

# Same-shape tasks with small grids from ARC-AGI-1 training (outputs keep the input's shape).
TASK_IDS = ("0d3d703e", "25ff71a9", "3c9b0459", "6150a2bd", "67a3c6ac", "68b16354")


def pick_tasks(ids: tuple[str, ...] = TASK_IDS) -> list[ArcTask]:
    res = load_tasks("arc-agi-1/training")
    by_id = {t.id: t for t in res.tasks}
    return [by_id[i] for i in ids]


def build_pick_dataset(root: Path, augment: int, validation: bool = False) -> Path:
    """The picked tasks as an "evaluation" source (so their test pairs form test/), built into root/ds on an
    8x8 canvas with `augment` augmentations each (seed 1); `validation`: also val/ (build-data --validation).
    Returns the dataset folder."""
    from hrm_edge.data.build import BuildConfig, build_dataset

    src = root / "evaluation"
    src.mkdir()
    for t in pick_tasks():
        d = {k: [{"input": p.input.tolist(), "output": p.output.tolist()} for p in getattr(t, k)]
             for k in ("train", "test")}
        (src / f"{t.id}.json").write_text(json.dumps(d))
    build_dataset(BuildConfig(sources=[str(src)], out=root / "ds", augment=augment, seed=1, canvas=8, workers=1,
                              validation=validation))
    return root / "ds"


def build_examples(tasks: list[ArcTask], n_aug: int, seed: int, canvas: int
                   ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(identifier names with '<blank>' at row 0, inputs, labels, puzzle ids)."""
    rng = np.random.default_rng(seed)
    names = ["<blank>"]
    xs, ys, ids = [], [], []
    for t in tasks:
        for aug in random_augmentations(rng, n_aug, include_identity=True):
            names.append(identifier_name(t.id, aug))
            for p in t.train:
                xs.append(encode_grid(aug.apply(p.input), canvas))
                ys.append(encode_grid(aug.apply(p.output), canvas))
                ids.append(len(names) - 1)
    return names, np.stack(xs), np.stack(ys), np.asarray(ids)


def train_tiny(out: str | Path, *, steps: int = 300, n_aug: int = 4, batch: int = 16, seed: int = 0,
               lr: float = 3e-3, canvas: int = 8, tasks: list[ArcTask] | None = None) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: one thread is fastest, and immune to busy-waiting on a shared CPU
    try:
        return _train(out, steps=steps, n_aug=n_aug, batch=batch, seed=seed, lr=lr, canvas=canvas, tasks=tasks)
    finally:
        torch.set_num_threads(threads)


def _train(out: str | Path, *, steps: int, n_aug: int, batch: int, seed: int, lr: float, canvas: int,
           tasks: list[ArcTask] | None) -> dict:
    torch.manual_seed(seed)
    tasks = tasks if tasks is not None else pick_tasks()
    names, xs, ys, ids = build_examples(tasks, n_aug, seed, canvas)
    cfg = preset("tiny")
    cfg.canvas = canvas
    cfg.num_puzzle_identifiers = len(names)
    model = build_model(cfg, seed=seed).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    g = np.random.default_rng(seed)
    X, Y, P = torch.from_numpy(xs.astype(np.int64)), torch.from_numpy(ys.astype(np.int64)), torch.from_numpy(ids)

    def sample() -> dict[str, torch.Tensor]:
        i = torch.from_numpy(g.integers(0, len(xs), size=batch))
        return {"inputs": X[i], "labels": Y[i], "puzzle_identifiers": P[i]}

    carry = initial_train_carry(model, sample())
    history = []
    for _ in range(steps):
        carry, res = act_train_step(model, carry, sample())
        labels = carry.data["labels"]
        mask = labels != PAD
        logits = res["logits"].float()
        lm = F.cross_entropy(logits[mask], labels[mask])
        with torch.no_grad():
            correct = ((logits.argmax(-1) == labels) | ~mask).all(-1).float()
        q_halt = F.binary_cross_entropy_with_logits(res["q_halt_logits"], correct)
        loss = lm + 0.5 * q_halt
        if "target_q_continue" in res:
            loss = loss + 0.5 * F.binary_cross_entropy_with_logits(res["q_continue_logits"], res["target_q_continue"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        carry.z_H, carry.z_L = carry.z_H.detach(), carry.z_L.detach()
        history.append((float(lm.detach()), float(correct.mean())))
    model.eval()
    path = Path(out)
    save_checkpoint(path, model, train_state={"step": steps, "seed": seed, "preset": "tiny-trained-for-tests"})
    (path.parent / "identifiers.json").write_text(json.dumps(names))
    return {"names": names, "first_lm_loss": float(np.mean([h[0] for h in history[:10]])),
            "final_lm_loss": float(np.mean([h[0] for h in history[-20:]])),
            "final_exact": float(np.mean([h[1] for h in history[-20:]])), "tasks": [t.id for t in tasks]}


if __name__ == "__main__":  # python tests/_tinytrain.py /tmp/tt/model.pt
    import sys
    import time

    t0 = time.perf_counter()
    info = train_tiny(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tinytrain/model.pt",
                      steps=int(sys.argv[2]) if len(sys.argv) > 2 else 300)
    print({k: v for k, v in info.items() if k != "names"}, f"{time.perf_counter() - t0:.1f}s")
