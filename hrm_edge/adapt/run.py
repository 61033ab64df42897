"""One adaptation: a checkpoint, unseen tasks' demonstration pairs in memory, the trainer's step, a new checkpoint.

The step is the trainer's (`model.act.act_train_step`: a sample keeps its slot and carry until it halts,
one ACT segment per optimizer step), the loss its `act_loss`, the optimizers its `SparseSignSGD` on the
puzzle rows the batch used (lr 1e-2, decay 0.1) and, under `--mode full`, `AdamAtan2` on the dense
weights; the schedule its `lr_at` (warmup then cosine), laid over the step count (`--steps`) or over the
wall-clock budget (`--budget`: the schedule follows the fraction of the budget spent). `embedding` mode
changes nothing but the new rows, so the exported graph and a built engine stay valid (only the bundle's
puzzle table changes); `full` also trains the trunk (a refit updates an engine's weights).

Selection: the held-out demonstration pairs (`demos.py`) are solved, as `hrm-edge solve` solves (the
trainer's `arc_score`), before the first step and at evenly spaced points; the state with the best
pass@2 (then pass@1, then answer token accuracy; later wins a tie) is the one written. Without held-out
pairs the last state is written. SIGINT/SIGTERM end the run at the next step boundary and write the state
kept so far, atomically (the output is never half-written); adapting the output again continues its rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_edge.adapt.demos import build_demos
from hrm_edge.adapt.rows import append_rows, base_names
from hrm_edge.data.arc import ArcTask
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model.act import act_train_step, initial_train_carry
from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from hrm_edge.train.arc_eval import arc_score
from hrm_edge.train.loss import act_loss
from hrm_edge.train.optim import AdamAtan2, SparseSignSGD, lr_at
from hrm_edge.train.shared import StopFlag

MODES = ("embedding", "full")
SCHEDULE_POINTS = 1000  # a budget run lays the trainer's step schedule over this many points of its time


@dataclass
class AdaptOptions:
    """What an adaptation does; the defaults are the references' rates (the trainer's)."""

    budget: float | None = None  # seconds (wall clock, held-out scoring included)
    steps: int | None = None  # 0: the rows appended at their start value, no training (the zero-shot baseline)
    augment: int = 64  # distinct augmented copies per task (build-data's rule), plus the task itself
    mode: str = "embedding"
    batch: int = 32
    device: str = "cpu"
    seed: int = 0
    lr: float = 1e-4
    puzzle_lr: float = 1e-2
    weight_decay: float = 0.1
    puzzle_weight_decay: float = 0.1
    warmup: float = 0.05  # fraction of the run
    lr_min_ratio: float = 1.0  # the references' ARC recipes keep the rate flat after warmup
    evals: int = 8  # held-out scorings after the start
    eval_augment: int = 8
    hold_out: bool = True
    threads: int | None = None

    def validate(self) -> None:
        if self.mode not in MODES:
            raise HrmEdgeError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if (self.budget is None) == (self.steps is None):
            raise HrmEdgeError("give exactly one of --budget SECONDS and --steps N")
        if self.budget is not None and not self.budget > 0:
            raise HrmEdgeError(f"--budget must be > 0 seconds, got {self.budget}")
        if self.steps is not None and self.steps < 0:
            raise HrmEdgeError(f"--steps must be >= 0, got {self.steps}")
        if self.augment < 0 or self.batch < 1 or self.evals < 0:
            raise HrmEdgeError("--augment must be >= 0, --batch >= 1")


@dataclass
class AdaptResult:
    """What happened, for the command's report and the checkpoint's `train_state["adapt"]`."""

    out: Path
    tasks: list[str]
    mode: str
    steps: int
    seconds: float
    examples: int
    rows_added: int
    held_out: int  # tasks scored on a held-out demonstration
    kept_step: int
    kept_score: dict[str, Any] | None
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"] = str(self.out)
        return d


def adapt_checkpoint(ckpt: str | Path, tasks: list[ArcTask], out: str | Path, opts: AdaptOptions,
                     say: Callable[[str], None] | None = None, on_step: Callable[[int], None] | None = None
                     ) -> AdaptResult:
    """Adapt `ckpt` to `tasks` (their demonstrations only) and write an ordinary checkpoint to `out`."""
    opts.validate()
    ckpt, out = Path(ckpt), Path(out)
    say = say or (lambda line: None)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    device = torch.device(opts.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise HrmEdgeError(f"--device {opts.device}: no CUDA device on this machine")
    ck = load_checkpoint(ckpt)
    model, cfg = ck.model, ck.config
    has_rows = int(getattr(cfg, "puzzle_emb_ndim", 0) or 0) > 0
    if not has_rows and opts.mode == "embedding":
        raise HrmEdgeError(f"{cfg.family} models have no puzzle embedding rows to adapt; use --mode full "
                           "(fine-tunes every weight on the demonstrations)", ckpt)
    if cfg.family == "lite":
        raise HrmEdgeError("lite models have no puzzle rows, and its trainer is not the ACT step adapt runs; "
                           "fine-tune it with `hrm-edge train --resume-from` on a dataset of the demonstrations",
                           ckpt)
    if not tasks:
        raise HrmEdgeError("no tasks to adapt to")
    canvas = int(cfg.canvas)
    demos = build_demos(tasks, opts.augment, canvas, opts.seed, opts.hold_out)
    if demos.num_examples == 0:
        raise HrmEdgeError("the tasks have no demonstration pairs with outputs")
    table_names = base_names(ckpt, ck.train_state, int(cfg.num_puzzle_identifiers))
    rows, added = append_rows(model, demos.names, table_names)
    row_of = np.asarray(rows, dtype=np.int64)[demos.ids]
    say(f"adapting {len(tasks)} tasks: {demos.num_examples} examples ({opts.augment} augmentations), "
        f"{added} puzzle rows appended ({int(cfg.num_puzzle_identifiers)} in all), "
        f"{len(demos.held_out)} held-out pairs, mode {opts.mode}")

    torch.manual_seed(opts.seed)
    model = model.to(device).train()
    table = model.puzzle_emb.weights
    table.requires_grad_(False)
    if opts.mode == "embedding":
        model.requires_grad_(False)
    dense = [p for p in model.parameters() if p.requires_grad]
    opt = AdamAtan2([{"params": dense}], lr=opts.lr, betas=(0.9, 0.95), weight_decay=opts.weight_decay)
    sparse = SparseSignSGD(table, opts.puzzle_lr, opts.puzzle_weight_decay)
    index = {n: i for i, n in enumerate(table_names) if n and n != "<blank>"}
    rng = np.random.default_rng([opts.seed, 4242])

    def score() -> dict[str, Any] | None:
        if not demos.held_out:
            return None
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            s = arc_score(model, demos.held_out, index, str(device), augment=opts.eval_augment,
                          batch=max(opts.batch, 8), seed=opts.seed)
        return {k: s[k] for k in ("pass@1", "pass@2", "answer_token_accuracy")}

    def key(s: dict[str, Any] | None) -> tuple[float, ...]:
        return () if s is None else (s["pass@2"], s["pass@1"], s["answer_token_accuracy"] or 0.0)

    def snapshot() -> dict[str, torch.Tensor]:
        if opts.mode == "embedding":
            return {"puzzle_emb.weights": table.detach().clone()}
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    t0 = time.perf_counter()
    first = score()
    eval_cost = time.perf_counter() - t0  # the longest scoring so far: the budget keeps room for the last one
    history = [{"step": 0, "seconds": 0.0, **(first or {})}] if first is not None else []
    kept, kept_step, kept_score = snapshot(), 0, first
    if first is not None:
        say(f"held-out before adapting: pass@2 {first['pass@2']:.3f}")
    total = opts.steps or SCHEDULE_POINTS
    warm = int(round(opts.warmup * total))
    eval_at = _eval_points(opts, total)
    final_score = bool(demos.held_out and opts.evals)
    carry = None
    step, order, pos, stopped_by = 0, rng.permutation(demos.num_examples), 0, None
    bar = _Bar(opts, say)
    loss_avg = None
    with StopFlag() as stop:
        while True:
            elapsed = time.perf_counter() - t0
            point = step + 1 if opts.steps is not None else min(total, int(total * elapsed / opts.budget) + 1)  # type: ignore[operator]
            if (opts.steps is not None and step >= opts.steps) or \
                    (opts.budget and elapsed + (eval_cost if final_score else 0.0) >= opts.budget):
                break
            step += 1
            for g in opt.param_groups:
                g["lr"] = lr_at(point, opts.lr, warm, total, opts.lr_min_ratio)
            sparse.lr = lr_at(point, opts.puzzle_lr, warm, total, opts.lr_min_ratio)
            if pos + opts.batch > len(order):
                order, pos = np.concatenate([order[pos:], rng.permutation(demos.num_examples)]), 0
                while len(order) < opts.batch:
                    order = np.concatenate([order, rng.permutation(demos.num_examples)])
            pick = order[pos:pos + opts.batch]
            pos += opts.batch
            batch = {"inputs": torch.from_numpy(demos.inputs[pick].astype(np.int32)).to(device),
                     "labels": torch.from_numpy(demos.labels[pick].astype(np.int32)).to(device),
                     "puzzle_identifiers": torch.from_numpy(row_of[pick].astype(np.int32)).to(device)}
            if carry is None:
                carry = initial_train_carry(model, batch)
            carry, res = act_train_step(model, carry, batch, puzzle_vectors=sparse.rows)
            loss, _ = act_loss(res, carry.data["labels"], carry.halted, carry.steps)
            (loss / opts.batch).backward()
            if dense:
                opt.step()
                opt.zero_grad(set_to_none=True)
            sparse.step()
            lv = float(loss.detach()) / opts.batch
            loss_avg = lv if loss_avg is None else 0.9 * loss_avg + 0.1 * lv
            if on_step is not None:
                on_step(step)
            elapsed = time.perf_counter() - t0
            due = (opts.steps and step in eval_at) or (opts.budget and eval_at and elapsed >= eval_at[0])
            if due and demos.held_out:
                while opts.budget and eval_at and elapsed >= eval_at[0]:
                    eval_at.pop(0)
                t_eval = time.perf_counter()
                s = score()
                eval_cost = max(eval_cost, time.perf_counter() - t_eval)
                history.append({"step": step, "seconds": round(time.perf_counter() - t0, 1), **(s or {})})
                if key(s) >= key(kept_score):
                    kept, kept_step, kept_score = snapshot(), step, s
                say(f"step {step}: held-out pass@2 {s['pass@2']:.3f} pass@1 {s['pass@1']:.3f}"  # type: ignore[index]
                    f" (kept: step {kept_step})")
            bar.update(step, elapsed, loss_avg)
            if stop.signum is not None:
                stopped_by = stop.signum
                break
        bar.close()
        if final_score and stopped_by is None and history and history[-1]["step"] != step:
            s = score()  # the final state (a budget run stopped early enough for this scoring to fit)
            history.append({"step": step, "seconds": round(time.perf_counter() - t0, 1), **(s or {})})
            if key(s) >= key(kept_score):
                kept, kept_step, kept_score = snapshot(), step, s
            say(f"step {step}: held-out pass@2 {s['pass@2']:.3f} pass@1 {s['pass@1']:.3f}"  # type: ignore[index]
                f" (kept: step {kept_step})")
        if not demos.held_out:
            kept, kept_step = snapshot(), step
        model.load_state_dict({**model.state_dict(), **kept})
        model.eval().to("cpu")
        seconds = time.perf_counter() - t0
        result = AdaptResult(out, demos.tasks, opts.mode, step, round(seconds, 1), demos.num_examples, added,
                             len(demos.held_out), kept_step, kept_score, history, stopped_by)
        state = {"step": kept_step, "identifiers": table_names, "adapt": {
            **result.to_dict(), "base": str(ckpt.resolve()), "base_sha256": ck.sha256,
            "options": asdict(opts)}}
        if isinstance(ck.train_state, dict) and ck.train_state.get("data_fingerprint"):
            state["base_data_fingerprint"] = ck.train_state["data_fingerprint"]
        save_checkpoint(out, model, train_state=state, metrics={"held_out": kept_score} if kept_score else None)
    return result


def _eval_points(opts: AdaptOptions, total: int) -> list[Any]:
    """Where the held-out pairs are scored: `evals` evenly spaced steps (the last at the last step), or the first
    `evals - 1` of `evals` evenly spaced points of the budget; the final state of a budget run is scored after
    its loop, which stops early enough (by the longest scoring so far) for that to fit in the budget."""
    if opts.evals == 0:
        return []
    if opts.steps is not None:
        return sorted({max(1, round(opts.steps * (i + 1) / opts.evals)) for i in range(opts.evals)})
    return [opts.budget * (i + 1) / opts.evals for i in range(opts.evals - 1)]  # type: ignore[operator]


class _Bar:
    """The progress bar (rich, on stderr, only on a terminal); logs get the held-out lines instead."""

    def __init__(self, opts: AdaptOptions, say: Callable[[str], None]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        con = Console(stderr=True)
        self.by_time = opts.budget is not None
        self.prog = Progress(TextColumn("adapt"), BarColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                             console=con, transient=True, disable=not con.is_terminal)
        self.prog.start()
        self.tid = self.prog.add_task("", total=opts.budget if self.by_time else opts.steps)

    def update(self, step: int, elapsed: float, loss: float | None) -> None:
        self.prog.update(self.tid, completed=elapsed if self.by_time else step,
                         description=f"step {step} loss {loss:.3f}" if loss is not None else f"step {step}")

    def close(self) -> None:
        self.prog.stop()
