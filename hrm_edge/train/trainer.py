"""`hrm-edge train` for ACT v1: the reference's training step in one flat loop you read top to bottom.

One optimizer step = one ACT segment for every slot of the global batch (deep supervision): a
sample keeps its slot until it halts, then the slot takes the next example from the sampler
(`act.act_train_step`). The loss is the reference's (`loss.act_loss`) over the global batch; dense
weights go to Adam-atan2 (or AdamW), the puzzle table to sparse sign-SGD on the batch's rows only
(`optim.py`); warmup then cosine. A checkpoint holds everything the next step depends on (weights,
optimizer moments, EMA, every RNG, the sampler position and the in-flight ACT carry), so a run
stopped by SIGINT/SIGTERM and resumed logs exactly the losses of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hrm_edge.config import config_to_dict, preset
from hrm_edge.data.dataset import HrmDataset
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model.act import ActTrainCarry, act_train_step, halt_margin, initial_train_carry, skip_train_draws
from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from hrm_edge.train.arc_eval import arc_score, eval_tasks, identifier_rows
from hrm_edge.train.batches import Sampler, default_workers
from hrm_edge.train.config import STATE_SHAPING, TrainConfig, config_toml
from hrm_edge.train.dist import Dist
from hrm_edge.train.loss import act_loss
from hrm_edge.train.metrics import JsonlLog, Progress, StepTimes, Trackers, check_trackers, eval_bar
from hrm_edge.train.model_setup import build_train_model
from hrm_edge.train.optim import AdamAtan2, SparseSignSGD, lr_at
from hrm_edge.train.shared import StopFlag, best_key, data_fingerprint, eval_split, eval_subset
from hrm_edge.train.state import (
    capture_rng,
    carry_from_state,
    carry_to_state,
    concat_carries,
    prune_checkpoints,
    remove_stale_temps,
    restore_rng,
    split_carries,
    step_checkpoints,
)


# ------------------------------------------------------------------------------------------------ eval
@torch.no_grad()
def evaluate(model: Any, ds: HrmDataset, rows_by_set: dict[str, np.ndarray], batch: int, device: torch.device,
             loss_kind: str, advance: Any = None) -> dict[str, float]:
    """Every segment (the reference's evaluation), on a fixed subset; metrics of the final segment.

    token_accuracy counts non-PAD label cells only; exact_accuracy is whole-grid; q_halt_accuracy
    compares `q_halt >= 0` with exactness; mean_steps is where the family's adaptive rule (q_halt > q_continue,
    TRM: q_halt > 0) would have stopped each sample.
    """
    was_training = model.training
    model.eval()
    sums = dict.fromkeys(("n", "loss", "token_accuracy", "exact_accuracy", "q_halt_accuracy", "steps"), 0.0)
    for name, rows in rows_by_set.items():
        s = ds.sets[name]
        for lo in range(0, len(rows), batch):
            r = np.sort(rows[lo:lo + batch])
            b = {"inputs": torch.from_numpy(np.asarray(s.inputs[r], np.int32)).to(device),
                 "labels": torch.from_numpy(np.asarray(s.labels[r], np.int32)).to(device),
                 "puzzle_identifiers": torch.from_numpy(
                     s.puzzle_identifiers[s.example_puzzles[r]].astype(np.int32)).to(device)}
            carry = initial_train_carry(model, b)
            stop = torch.full((len(r),), model.config.max_steps, device=device)
            for n in range(1, model.config.max_steps + 1):
                carry, out = act_train_step(model, carry, b)
                want = (halt_margin(out["q_halt_logits"], out["q_continue_logits"], model.adaptive_rule) > 0) \
                    & (stop == model.config.max_steps)
                stop = torch.where(want & (n < stop), torch.full_like(stop, n), stop)
            loss, m = act_loss(out, carry.data["labels"], carry.halted, carry.steps, loss_kind)
            sums["n"] += float(m["count"])
            sums["loss"] += float(m["lm_loss"])
            for k in ("token_accuracy", "exact_accuracy", "q_halt_accuracy"):
                sums[k] += float(m[k])
            sums["steps"] += float(stop.float().sum())
            if advance is not None:
                advance(len(r))
    model.train(was_training)
    n = max(1.0, sums["n"])
    return {"samples": int(sums["n"]), "lm_loss": sums["loss"] / n, "token_accuracy": sums["token_accuracy"] / n,
            "exact_accuracy": sums["exact_accuracy"] / n, "q_halt_accuracy": sums["q_halt_accuracy"] / n,
            "mean_steps": sums["steps"] / n}


# ------------------------------------------------------------------------------------------------ train
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise HrmEdgeError(f"--device {name!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HrmEdgeError(f"--device {name}: no CUDA device on this machine")
    return dev


def total_steps(cfg: TrainConfig, ds: HrmDataset) -> int:
    """--steps, or the reference's count for --epochs: epochs * groups * mean examples / batch."""
    if cfg.steps is not None:
        return cfg.steps
    m = ds.metadata
    return max(1, int(cfg.epochs * m.total_groups * m.mean_puzzle_examples / cfg.batch))  # type: ignore[operator]


def train(cfg: TrainConfig, resume: bool = False, quiet: bool = False, on_step: Any = None) -> dict[str, Any]:
    """Run (or resume) a training run into cfg.out; returns a summary. `on_step(step)` is a test hook."""
    cfg.validate()
    check_trackers(cfg.tensorboard, cfg.wandb)
    ds = HrmDataset(cfg.data, "train")
    split = eval_split(cfg.data, cfg.eval_split)
    if split is not None:
        cfg.eval_split = split  # config.toml records the split best.pt was chosen on
    eval_ds = HrmDataset(cfg.data, split) if split is not None else None
    if ds.num_examples < cfg.batch:
        raise HrmEdgeError(f"the train split has {ds.num_examples} examples, fewer than --batch {cfg.batch}",
                           path=ds.root)
    device = resolve_device(cfg.device)
    if model_family(cfg) == "lite":
        from hrm_edge.train.lite import train_lite

        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise HrmEdgeError("the lite trainer runs in one process; start it without torchrun")

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        return train_lite(cfg, ds, eval_ds, device, resume, quiet, on_step, total_steps(cfg, ds),
                          data_fingerprint(Path(cfg.data)))
    dist = Dist(device)
    try:
        return _train(cfg, ds, eval_ds, dist, resume, quiet, on_step)
    finally:
        dist.close()


def _eval_name(cfg: TrainConfig) -> str:
    """The metric prefix best.pt's choice is recorded under: `eval` (the test split, as before) or `val`."""
    return "val" if cfg.eval_split == "val" else "eval"


def model_family(cfg: TrainConfig) -> str:
    """The family a run trains: from --preset, --init-from's checkpoint, or lite for --resume-from."""
    if cfg.resume_from:
        return "lite"
    if cfg.init_from:
        return load_checkpoint(cfg.init_from).config.family
    return preset(cfg.preset or "").family


def _train(cfg: TrainConfig, ds: HrmDataset, eval_ds: HrmDataset | None, dist: Dist, resume: bool, quiet: bool,
           on_step: Any) -> dict[str, Any]:
    out = Path(cfg.out)
    ckdir = out / "checkpoints"
    device = dist.device
    quiet = quiet or not dist.main
    if cfg.batch % dist.world:
        raise HrmEdgeError(f"--batch {cfg.batch} cannot be split over {dist.world} processes")
    if dist.world > 1 and cfg.micro_batch is None:
        cfg.micro_batch = cfg.batch // dist.world  # one chunk per rank (written to config.toml)
    micro = cfg.micro if cfg.micro_batch != "auto" else cfg.batch // dist.world  # auto: halved on OOM
    chunks = cfg.batch // micro
    mine = dist.chunk_range(chunks)
    if cfg.amp == "fp16" and device.type != "cuda":
        raise HrmEdgeError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    steps_total = total_steps(cfg, ds)
    if cfg.warmup is None:
        cfg.warmup = min(2000, steps_total // 10)
    fingerprint = data_fingerprint(Path(cfg.data))

    saved: dict[str, Any] | None = None
    if resume and dist.main:
        remove_stale_temps(out)
    if resume:
        found = step_checkpoints(ckdir)
        if not found:
            raise HrmEdgeError("nothing to resume: no checkpoints/step_N.pt", path=out)
        saved = torch.load(found[-1][1], map_location="cpu", weights_only=True)
        old, defaults = saved["train_state"]["config"], TrainConfig()
        for k in STATE_SHAPING:
            # `model` is compared resolved, once the model is built (config.toml stores the resolved table,
            # the checkpoint the overrides); an option newer than the checkpoint counts as its default
            was = old.get(k, getattr(defaults, k))
            if k != "model" and was != getattr(cfg, k):
                raise HrmEdgeError(f"--resume: {k} was {was!r} in this run, now {getattr(cfg, k)!r}", path=out)
        if saved["train_state"]["data_fingerprint"] != fingerprint:
            raise HrmEdgeError("--resume: the dataset changed since the checkpoint (fingerprint differs)", path=out)

    model = build_train_model(cfg, ds, say=(lambda line: print(line, file=sys.stderr, flush=True))
                              if dist.main else None).to(device).train()
    mcfg = model.config
    if saved is not None and config_to_dict(mcfg) != saved["config"]:
        raise HrmEdgeError(f"--resume: the model config differs from the checkpoint's ({saved['config']})", path=out)
    has_table = mcfg.puzzle_emb_ndim > 0
    table = model.puzzle_emb.weights if has_table else None
    if cfg.freeze_weights:  # TRM's recipe: only the puzzle rows learn; the dense optimizer holds nothing
        if table is None:
            raise HrmEdgeError("--freeze-weights trains only the puzzle embedding, and this model has none")
        model.requires_grad_(False)
    if table is not None:
        table.requires_grad_(False)  # trained by SparseSignSGD, never by a dense gradient
    dense_names = [n for n, p in model.named_parameters() if p.requires_grad]
    dense = [p for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": dense}]  # one group, so --freeze-weights may leave it empty
    if cfg.optimizer == "adam-atan2":
        opt: torch.optim.Optimizer = AdamAtan2(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                               weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    sparse = SparseSignSGD(table, cfg.puzzle_lr, cfg.puzzle_weight_decay) if table is not None else None
    ema = copy.deepcopy(model).eval() if cfg.ema else None
    if cfg.compile:  # the segment is the recurrent core every step runs; the EMA copy stays eager
        model.segment = torch.compile(model.segment, backend=cfg.compile_backend)
    ema_params = [dict(ema.named_parameters())[n] for n in dense_names] if ema is not None else []
    if ema is not None:
        ema.requires_grad_(False)
    scaler = torch.amp.GradScaler(device.type) if cfg.amp == "fp16" else None
    amp_ctx = (lambda: torch.autocast(device.type, dtype=torch.bfloat16 if cfg.amp == "bf16" else torch.float16)) \
        if cfg.amp != "off" else contextlib.nullcontext

    def load_state(saved: dict[str, Any], whole: bool) -> tuple[int, int, int, range, list[ActTrainCarry]]:
        """Weights, optimizers, EMA, scaler and carry of a checkpoint (+ sampler, RNG, best when `whole`).
        Returns (step, micro, chunks, this rank's chunks, its carries); the saved carry is re-cut to the
        micro-batch in effect, so any world size resumes it."""
        nonlocal best, best_step, sampler
        ts = saved["train_state"]
        model.load_state_dict(ts["raw_model"] if "raw_model" in ts else saved["model"])
        opt.load_state_dict(ts["optimizer"])
        if ema is not None:
            ema.load_state_dict(saved["model"])
        if scaler is not None and ts.get("scaler"):
            scaler.load_state_dict(ts["scaler"])
        m = int(ts.get("micro") or micro) if cfg.micro_batch == "auto" else micro
        n = cfg.batch // m
        own = dist.chunk_range(n)
        every = split_carries(concat_carries([carry_from_state(c, device) for c in ts["carry"]]), m)
        if whole:
            best_step = ts.get("best_step")
            best = tuple(ts["best_key"]) if ts.get("best_key") is not None else None
            sampler.close()
            sampler = make_sampler(ts["sampler"]["epoch"], ts["sampler"]["pos"])
            restore_rng(ts["rng"])
        return ts["step"], m, n, own, [every[i] for i in own] if every else []

    workers = cfg.workers if cfg.workers is not None else default_workers(device)

    def make_sampler(epoch: int = 0, pos: int = 0) -> Sampler:
        return Sampler(ds, cfg.batch, cfg.seed, epoch, pos, workers=workers, prefetch=cfg.prefetch,
                       pin=device.type == "cuda")

    step, best, best_step = 0, None, None
    sampler = make_sampler()
    carries: list[ActTrainCarry] = []
    if saved is not None:
        step, micro, chunks, mine, carries = load_state(saved, whole=True)
    else:
        if out.exists() and any(out.iterdir()):
            raise HrmEdgeError("run folder is not empty (use --resume to continue it, or another --out)", path=out)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
    if cfg.freeze_trunk_steps and table is None:
        raise HrmEdgeError("--freeze-trunk-steps trains only the puzzle embedding; this model has none")
    arc_tasks = eval_tasks(cfg.data, cfg.eval_tasks, mcfg.canvas) if cfg.eval_tasks and dist.main else []
    arc_names = identifier_rows(cfg.data) if arc_tasks else {}
    dist.barrier()  # every rank has checked the run folder before rank 0 writes into it
    if dist.main:
        ckdir.mkdir(parents=True, exist_ok=True)
        (out / "config.toml").write_text(config_toml(cfg, config_to_dict(mcfg)) + f"# total steps: {steps_total}\n",
                                         encoding="utf-8")
    log = JsonlLog(out / "metrics.jsonl", resume_step=step if saved is not None else None) if dist.main else None
    eval_log = JsonlLog(out / "eval.jsonl", resume_step=step if saved is not None else None) if dist.main else None
    eval_rows = eval_subset(eval_ds, cfg.eval_samples, cfg.seed) if eval_ds is not None and cfg.eval_samples else {}
    progress = Progress(steps_total, quiet=quiet)
    trackers = Trackers(out, cfg.tensorboard, cfg.wandb, asdict(cfg), step if saved is not None else None) \
        if dist.main and (cfg.tensorboard or cfg.wandb) else None

    def run_eval(rows: dict[str, np.ndarray], label: str) -> dict[str, float]:
        """Evaluate the EMA weights (if any) on these rows, with a progress bar; the RNG stream is untouched."""
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            if ema is not None and table is not None:
                ema.puzzle_emb.weights.data.copy_(table.data)
            with eval_bar(label, sum(len(r) for r in rows.values()), quiet) as advance:
                return evaluate(ema if ema is not None else model, eval_ds, rows, micro, device, cfg.loss,
                                advance)

    def full_eval(step: int) -> dict[str, float]:
        """The whole test split: when the subset's best improves (--full-eval) or every F steps."""
        full = run_eval(eval_subset(eval_ds, eval_ds.num_examples, cfg.seed), f"full eval, step {step}")
        eval_log.write({"step": step, "split": cfg.eval_split, "full": True, **full})  # type: ignore[union-attr]
        if trackers is not None:
            trackers.log("full", {"step": step, **full})
        if not quiet:
            print(f"full eval step {step}: tok {full['token_accuracy']:.4f} exact {full['exact_accuracy']:.4f}"
                  f" ({full['samples']} samples)", flush=True)
        return full

    def save(path: Path, ev: dict[str, float] | None = None) -> None:
        """Collective: every rank calls it; the carries and the metric window are gathered, rank 0 writes."""
        nonlocal sums
        carry_states = [c for part in dist.gather_objects([carry_to_state(c) for c in carries]) for c in part]
        if dist.world > 1 and sums:
            keys = sorted(sums)
            total = dist.sum_(torch.stack([sums[k] for k in keys]))
            sums = {k: total[j] if dist.main else torch.zeros_like(total[j]) for j, k in enumerate(keys)}
        if not dist.main:
            return
        state = {"step": step, "config": asdict(cfg), "data_fingerprint": fingerprint, "optimizer": opt.state_dict(),
                 "sampler": sampler.state(), "carry": carry_states, "rng": capture_rng(),
                 "best_key": list(best) if best is not None else None, "best_step": best_step,
                 "best_metric": best[0] if best is not None else None,
                 "best_metric_name": f"{_eval_name(cfg)}/exact_accuracy",
                 "scaler": scaler.state_dict() if scaler is not None else None, "total_steps": steps_total,
                 "micro": micro,
                 "log_window": {"n": n_window, "sums": {k: v.cpu() for k, v in sums.items()}}}
        if ema is not None:
            state["raw_model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            if table is not None:
                ema.puzzle_emb.weights.data.copy_(table.data)
        save_checkpoint(path, ema if ema is not None else model, train_state=state, metrics=ev,
                        data_fingerprint=fingerprint)

    start_step, t_window, n_window, n_timed = step, time.perf_counter(), 0, 0
    times = StepTimes(device)
    sums: dict[str, torch.Tensor] = {}
    if saved is not None:  # the metric window of the interrupted log interval continues
        n_window = saved["train_state"]["log_window"]["n"]
        sums = {k: (v if dist.main else torch.zeros_like(v)).to(device)
                for k, v in saved["train_state"]["log_window"]["sums"].items()}
    events = JsonlLog(out / "events.jsonl", resume_step=step if saved is not None else None) if dist.main else None

    def event(rec: dict[str, Any], line: str) -> None:
        """OOM backoffs, skipped steps and rollbacks: events.jsonl and one stderr line (even with -q)."""
        if events is not None:
            events.write(rec)
            print(line, file=sys.stderr, flush=True)

    def zero_grads() -> None:
        opt.zero_grad(set_to_none=True)
        if sparse is not None:
            sparse.zero_grad()

    def run_chunks(batch: dict[str, torch.Tensor], carries: list[ActTrainCarry]
                   ) -> tuple[list[ActTrainCarry], torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Forward and backward of this rank's chunks (gradients accumulate); the new carries, the
        step's loss and each chunk's metrics. Chunks of other ranks only advance the RNG."""
        carries = list(carries) or [initial_train_carry(model, {k: v[i * micro:(i + 1) * micro] for k, v in
                                                                batch.items()}) for i in mine]
        for c in carries:
            c.z_H, c.z_L, c.steps, c.halted = c.z_H.to(device), c.z_L.to(device), c.steps.to(device), \
                c.halted.to(device)
        step_loss = torch.zeros((), dtype=torch.float64, device=device)
        ms = []
        for i in range(chunks):
            if i not in mine:  # another rank trains this chunk; follow the 1-process RNG stream
                skip_train_draws(model, micro, device)
                continue
            j = i - mine.start
            part = {k: v[i * micro:(i + 1) * micro] for k, v in batch.items()}
            with amp_ctx():
                carries[j], res = act_train_step(model, carries[j], part,
                                                 puzzle_vectors=sparse.rows if sparse is not None else None)
                loss, m = act_loss(res, carries[j].data["labels"], carries[j].halted, carries[j].steps, cfg.loss)
            times.mark("forward_s")
            scaled = loss / cfg.batch
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            times.mark("backward_s")
            step_loss += scaled.detach()
            ms.append(m)
        return carries, step_loss, ms

    stopped_by: int | None = None
    nonfinite = 0
    with StopFlag() as stop:
        while step < steps_total:
            step += 1
            lr = lr_at(step, cfg.lr, cfg.warmup, steps_total, cfg.lr_min_ratio)
            for g in opt.param_groups:
                g["lr"] = lr
            if sparse is not None:
                sparse.lr = lr_at(step, cfg.puzzle_lr, cfg.warmup, steps_total, cfg.lr_min_ratio)
            times.start()
            batch = {k: v.to(device, non_blocking=True) for k, v in sampler.next().items()}
            times.mark("data_s")
            before = (list(carries), torch.get_rng_state(),
                      torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
            while True:  # --micro-batch auto: an out-of-memory error halves the micro-batch and retries
                try:
                    carries, step_loss, ms, oom = *run_chunks(batch, carries), False
                except torch.OutOfMemoryError:
                    oom = True
                if not dist.any(oom):
                    break
                if cfg.micro_batch != "auto" or micro == 1:
                    raise HrmEdgeError(f"out of memory at micro-batch {micro}" +
                                       ("" if cfg.micro_batch == "auto" else "; try --micro-batch auto"))
                zero_grads()  # the carries were not replaced: run_chunks raised before returning them
                torch.set_rng_state(before[1])
                if before[2] is not None:
                    torch.cuda.set_rng_state(before[2], device)
                    torch.cuda.empty_cache()
                micro //= 2
                chunks, mine = cfg.batch // micro, dist.chunk_range(cfg.batch // micro)
                carries = split_carries(concat_carries(carries), micro)
                event({"step": step, "event": "oom_backoff", "micro_batch": micro, "accumulation": chunks},
                      f"out of memory: micro-batch now {micro}, accumulation {chunks} (batch {cfg.batch} unchanged)")
            skipped = dist.any(not bool(torch.isfinite(step_loss)))
            if skipped:  # no update; the carry stays as it was
                carries = list(before[0])
                zero_grads()
                nonfinite += 1
                event({"step": step, "event": "nonfinite_loss", "in_a_row": nonfinite},
                      f"step {step}: loss is not finite; step skipped ({nonfinite} in a row)")
                if cfg.nan_rollback and nonfinite >= cfg.nan_rollback:
                    found = step_checkpoints(ckdir)
                    if not found:
                        raise HrmEdgeError(f"{nonfinite} non-finite losses in a row and no checkpoint to roll back to",
                                           path=out)
                    back = torch.load(found[-1][1], map_location="cpu", weights_only=True)
                    event({"step": step, "event": "rollback", "to_step": back["train_state"]["step"]},
                          f"rolling back to {found[-1][1].name} (data and random stream move on)")
                    step, micro, chunks, mine, carries = load_state(back, whole=False)
                    sums, n_window, nonfinite = {}, 0, 0
            else:
                nonfinite = 0
                for m in ms:
                    for k, v in m.items():
                        sums[k] = sums[k] + v.to(torch.float64) if k in sums else v.to(torch.float64)
                dist.sum_grads(dense)
                if cfg.grad_clip:
                    if scaler is not None:
                        scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(dense, cfg.grad_clip)
                if step <= cfg.freeze_trunk_steps:
                    pass  # --freeze-trunk-steps: the dense weights (and their Adam moments) wait
                elif scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                if sparse is not None:
                    sparse.step(dist.gather_cat if dist.world > 1 else None)
                opt.zero_grad(set_to_none=True)
                if ema_params and step > cfg.freeze_trunk_steps:  # none under --freeze-weights
                    with torch.no_grad():
                        torch._foreach_lerp_(ema_params, dense, 1.0 - cfg.ema)
            times.mark("optimizer_s")  # with the gradient all-reduce and the EMA update
            times.end_step()
            n_timed += 1
            n_window += not skipped
            if on_step is not None:
                on_step(step)

            stop_now = dist.any(stop.signum is not None)
            if (step % cfg.log_every == 0 or step == steps_total) and n_window:
                if dist.world > 1:
                    keys = sorted(sums)
                    total = dist.sum_(torch.stack([sums[k] for k in keys]))
                    sums = {k: total[j] for j, k in enumerate(keys)}
                vals = {k: float(v) for k, v in sums.items()}  # the one host sync per logged step
                elapsed = time.perf_counter() - t_window
                cnt = vals.get("count", 0.0)
                terms = {k: vals.get(k, 0.0) / (cfg.batch * n_window) for k in ("lm_loss", "q_halt_loss",
                                                                                   "q_continue_loss")}
                rec: dict[str, Any] = {
                    # the total over the same window as its terms (the step's loss, averaged like them)
                    "step": step, "epoch": sampler.epoch,
                    "loss": terms["lm_loss"] + 0.5 * (terms["q_halt_loss"] + terms["q_continue_loss"]), **terms,
                    "lr": lr, "puzzle_lr": sparse.lr if sparse is not None else None, "halted": int(cnt)}
                if cnt:
                    rec.update({k: vals[k] / cnt for k in ("token_accuracy", "exact_accuracy", "q_halt_accuracy")})
                    rec["mean_steps"] = vals["steps"] / cnt
                rec.update({"samples_per_s": cfg.batch * n_timed / max(elapsed, 1e-9), **times.record()})
                if log is not None:
                    log.write(rec)
                if trackers is not None:
                    trackers.log("train", rec)
                progress.line(rec, step - start_step)
                sums, n_window, n_timed = {}, 0, 0
                times.reset()
                t_window = time.perf_counter()

            ev = None
            full_done = False
            if eval_rows and cfg.eval_every and (step % cfg.eval_every == 0 or step == steps_total):
                improved = False
                if dist.main:  # the other ranks wait at the next collective
                    ev = run_eval(eval_rows, f"eval, step {step}")
                    if arc_tasks:
                        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                            ev.update(arc_score(ema if ema is not None else model, arc_tasks, arc_names, str(device),
                                                batch=micro, seed=cfg.seed))
                    eval_log.write({"step": step, "split": cfg.eval_split, **ev})  # type: ignore[union-attr]
                    if trackers is not None:
                        trackers.log("eval", {"step": step, **ev})
                    if not quiet:
                        arc = f" pass@1 {ev['pass@1']:.3f} pass@2 {ev['pass@2']:.3f} ({ev['tasks']} tasks)" \
                            if "pass@1" in ev else ""
                        print(f"eval step {step}: tok {ev['token_accuracy']:.4f} exact {ev['exact_accuracy']:.4f} "
                              f"q_halt {ev['q_halt_accuracy']:.3f} steps {ev['mean_steps']:.2f} "
                              f"({ev['samples']} samples){arc}", flush=True)
                    if best is None or best_key(ev) > best:
                        best, best_step, improved = best_key(ev), step, True
                        if cfg.full_eval_on_best and eval_ds is not None and \
                                sum(len(r) for r in eval_rows.values()) < eval_ds.num_examples:
                            full = full_eval(step)
                            full_done = True
                            ev.update({f"full_{k}": v for k, v in full.items()})  # into best.json
                if dist.any(improved):
                    save(out / "best.pt", ev)
                t_window = time.perf_counter()  # eval time is not training throughput
            if eval_ds is not None and cfg.full_eval_every and step % cfg.full_eval_every == 0 and dist.main \
                    and not full_done:
                full_eval(step)
                t_window = time.perf_counter()
            if stop_now or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == steps_total:
                save(ckdir / f"step_{step}.pt", ev)
                if dist.main:
                    prune_checkpoints(ckdir, cfg.keep_last)
                t_window = time.perf_counter()
            if stop_now:
                stopped_by = stop.signum if stop.signum is not None else signal.SIGTERM
                break
    sampler.close()
    for f in (log, eval_log, events, trackers):
        if f is not None:
            f.close()
    final = ckdir / f"step_{step}.pt"
    if dist.main:
        (out / "latest.json").write_text(json.dumps({"step": step, "checkpoint": str(final.relative_to(out)),
                                                     "done": step >= steps_total}) + "\n", encoding="utf-8")
    return {"step": step, "total_steps": steps_total, "stopped_by": stopped_by, "checkpoint": str(final),
            "best_step": best_step, "best": list(best) if best is not None else None}
