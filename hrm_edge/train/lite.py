"""`hrm-edge train` for the `lite` family: the first user's train_arc_full.py, continued under this trainer.

The script's recipe, kept as it trained (so `--resume-from hrm_arc_step_N.pt` continues its run):
- forward: every reasoning cycle with gradients (no one-step gradient, no ACT carry across
  batches), dropout on; the whole micro-batch stops after cycle c > 0 when the batch MEAN of the
  halt probability exceeds the threshold (`act.halt_mask("batch-mean")`, the script's rule);
- loss: cross-entropy over every label cell (PAD counted, as the script does; `--lite-ignore-pad`
  leaves PAD cells out) + 0.01 x the mean over cycles of the batch-mean halt probability;
- AdamW (the script: lr 3e-4, weight decay 0.01, betas 0.9/0.999), gradient clipping at 1.0,
  torch's CosineAnnealingLR stepped once per optimizer step (no warmup); micro-batches are
  averaged like the script's gradient accumulation (loss x micro / batch).
The step counted here is the optimizer step (the scheduler's `last_epoch`); the script's
`global_step` counted micro-batches.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hrm_edge.config import LiteConfig, config_to_dict, preset
from hrm_edge.data.dataset import HrmDataset
from hrm_edge.data.tokens import PAD
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model import build_model
from hrm_edge.model.act import halt_mask
from hrm_edge.model.checkpoint import load_checkpoint, save_checkpoint
from hrm_edge.train.arc_eval import arc_score, eval_tasks
from hrm_edge.train.config import STATE_SHAPING, TrainConfig, config_toml
from hrm_edge.train.metrics import JsonlLog, Progress, StepTimes, Trackers, eval_bar
from hrm_edge.train.shared import StopFlag, best_key, eval_subset
from hrm_edge.train.state import capture_rng, prune_checkpoints, remove_stale_temps, restore_rng, step_checkpoints

HALT_PENALTY = 0.01  # train_arc_full.py's ACTLoss(halt_penalty=0.01)


def lite_forward(model: Any, inputs: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The script's forward: logits of the last cycle run and each cycle's halt probabilities (B,)."""
    cfg = model.config
    x = model.embed(inputs)
    carry = model.init_carry(x)
    probs: list[torch.Tensor] = []
    for cycle in range(1, cfg.max_cycles + 1):
        carry, logits, q_halt, q_cont = model.segment(carry, x)
        probs.append(torch.sigmoid(q_halt))
        with torch.no_grad():
            stop = halt_mask("batch-mean", cycle, q_halt.detach(), q_cont, cfg.max_cycles, model.min_halt_steps,
                             threshold=cfg.halt_threshold)
        if bool(stop.all()):
            break
    return logits, probs


def lite_loss(logits: torch.Tensor, labels: torch.Tensor, probs: list[torch.Tensor], ignore_pad: bool = False
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CE (mean over counted cells) + 0.01 x mean over cycles of the batch-mean halt probability."""
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1).long(),
                         ignore_index=PAD if ignore_pad else -100)
    halt = torch.stack([p.float().mean() for p in probs]).mean()
    return ce + HALT_PENALTY * halt, {"task_loss": ce.detach(), "halt_loss": halt.detach()}


def grid_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Non-PAD token accuracy and exact (whole-grid) accuracy, summed over the batch."""
    pred = logits.argmax(-1)
    mask = labels != PAD
    right = (pred == labels) & mask
    tok = right.sum(-1).float() / mask.sum(-1).clamp(min=1)
    exact = (right.sum(-1) == mask.sum(-1)).float()
    return {"token_accuracy": float(tok.sum()), "exact_accuracy": float(exact.sum())}


@torch.no_grad()
def evaluate_lite(model: Any, ds: HrmDataset, rows_by_set: dict[str, np.ndarray], batch: int,
                  device: torch.device, advance: Any = None) -> dict[str, float]:
    """The script's forward in eval mode (batch-mean halting, as it validated) on a fixed subset."""
    was = model.training
    model.eval()
    n = tok = exact = cycles = 0.0
    for name, rows in rows_by_set.items():
        s = ds.sets[name]
        for lo in range(0, len(rows), batch):
            r = np.sort(rows[lo:lo + batch])
            inp = torch.from_numpy(np.asarray(s.inputs[r], np.int64)).to(device)
            lab = torch.from_numpy(np.asarray(s.labels[r], np.int64)).to(device)
            logits, probs = lite_forward(model, inp)
            m = grid_metrics(logits, lab)
            n, tok, exact, cycles = n + len(r), tok + m["token_accuracy"], exact + m["exact_accuracy"], \
                cycles + len(probs) * len(r)
            if advance is not None:
                advance(len(r))
    model.train(was)
    n = max(n, 1.0)
    return {"samples": int(n), "token_accuracy": tok / n, "exact_accuracy": exact / n, "mean_steps": cycles / n}


def _script_file(path: str) -> Any:
    ck = load_checkpoint(path)
    if ck.source_format != "lite-script":
        raise HrmEdgeError(f"--resume-from takes a train_arc_full.py file (hrm_arc_step_N.pt), not {ck.source_format}",
                           path=path)
    return ck


def train_lite(cfg: TrainConfig, ds: HrmDataset, eval_ds: HrmDataset | None, device: torch.device, resume: bool,
               quiet: bool, on_step: Any, steps_total: int, fingerprint: str) -> dict[str, Any]:
    """Run, resume (`--resume`) or continue a script run (`--resume-from`) of a lite model into cfg.out."""
    from hrm_edge.train.batches import Sampler, default_workers

    out, ckdir = Path(cfg.out), Path(cfg.out) / "checkpoints"
    if cfg.dtype != "float32" or cfg.recipe:
        raise HrmEdgeError("the lite family trains in float32 with train_arc_full.py's recipe; --dtype and --recipe "
                           "are for act-v1 and trm")
    if cfg.micro_batch == "auto" or cfg.ema or cfg.amp == "fp16":
        raise HrmEdgeError("the lite trainer has no --micro-batch auto, --ema or --amp fp16 (yet)")
    if cfg.warmup:
        raise HrmEdgeError("the lite family trains without warmup (train_arc_full.py's cosine); drop --warmup")
    if cfg.optimizer != "adamw":
        raise HrmEdgeError("the lite family trains with AdamW, as train_arc_full.py does: --optimizer adamw")
    if cfg.freeze_trunk_steps or cfg.full_eval_every or cfg.compile:
        raise HrmEdgeError("the lite trainer has no --freeze-trunk-steps (no puzzle embedding), --full-eval-every "
                           "or --compile")
    cfg.warmup = 0
    saved = None
    if resume:
        remove_stale_temps(out)
        found = step_checkpoints(ckdir)
        if not found:
            raise HrmEdgeError("nothing to resume: no checkpoints/step_N.pt", path=out)
        saved = torch.load(found[-1][1], map_location="cpu", weights_only=True)
        old = saved["train_state"]["config"]
        defaults = TrainConfig()
        for k in (*STATE_SHAPING, "resume_from"):
            # `model` is compared resolved, once the model is built (config.toml stores the resolved table, the
            # checkpoint the overrides); an option newer than the checkpoint counts as its default
            was = old.get(k, getattr(defaults, k))
            if k != "model" and was != getattr(cfg, k):
                raise HrmEdgeError(f"--resume: {k} was {was!r} in this run, now {getattr(cfg, k)!r}", path=out)
    elif out.exists() and any(out.iterdir()):
        raise HrmEdgeError("run folder is not empty (use --resume to continue it, or another --out)", path=out)

    script = _script_file(cfg.resume_from) if cfg.resume_from else None
    canvas = int(round(math.sqrt(ds.metadata.seq_len)))
    if script is not None or cfg.init_from:
        model = (script or load_checkpoint(cfg.init_from)).model  # type: ignore[union-attr]
        if model.config.canvas != canvas:
            raise HrmEdgeError(f"model canvas {model.config.canvas} != dataset canvas {canvas}", path=ds.root)
    else:
        mcfg = preset(cfg.preset or "")
        for k, v in cfg.model.items():
            setattr(mcfg, k, v)
        mcfg.canvas = canvas
        model = build_model(mcfg, seed=cfg.seed)
    if not isinstance(model.config, LiteConfig):
        raise HrmEdgeError("--resume-from holds a lite model; use --preset/--init-from for other families")
    if saved is not None and config_to_dict(model.config) != saved["config"]:
        raise HrmEdgeError(f"--resume: the model config differs from the checkpoint's ({saved['config']})", path=out)
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps_total, eta_min=cfg.lr * cfg.lr_min_ratio)
    step, best, best_step = 0, None, None
    workers = cfg.workers if cfg.workers is not None else default_workers(device)
    sampler = Sampler(ds, cfg.batch, cfg.seed, workers=workers, prefetch=cfg.prefetch, pin=device.type == "cuda")
    if saved is not None:
        ts = saved["train_state"]
        model.load_state_dict(saved["model"])
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        step, best_step = ts["step"], ts.get("best_step")
        best = tuple(ts["best_key"]) if ts.get("best_key") is not None else None
        sampler = Sampler(ds, cfg.batch, cfg.seed, ts["sampler"]["epoch"], ts["sampler"]["pos"], workers=workers,
                          prefetch=cfg.prefetch, pin=device.type == "cuda")
        restore_rng(ts["rng"])
    else:
        if script is not None:  # the script's AdamW moments and cosine position (empty in an init file)
            if script.train_state.get("optimizer_state_dict"):
                opt.load_state_dict(script.train_state["optimizer_state_dict"])
            if script.train_state.get("scheduler_state_dict"):
                sched.load_state_dict(script.train_state["scheduler_state_dict"])
                step = int(sched.last_epoch)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
    arc_tasks = eval_tasks(cfg.data, cfg.eval_tasks, canvas) if cfg.eval_tasks else []
    ckdir.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(config_toml(cfg, config_to_dict(model.config)) +
                                     f"# total steps: {steps_total}\n", encoding="utf-8")
    log = JsonlLog(out / "metrics.jsonl", resume_step=step if saved is not None else None)
    eval_log = JsonlLog(out / "eval.jsonl", resume_step=step if saved is not None else None)
    eval_rows = eval_subset(eval_ds, cfg.eval_samples, cfg.seed) if eval_ds is not None and cfg.eval_samples else {}
    progress = Progress(steps_total, quiet=quiet)
    trackers = Trackers(out, cfg.tensorboard, cfg.wandb, asdict(cfg), step if saved is not None else None) \
        if cfg.tensorboard or cfg.wandb else None
    micro, start = cfg.micro, step
    times, t_window = StepTimes(device), time.perf_counter()

    def run_eval(rows: dict[str, np.ndarray], label: str) -> dict[str, float]:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), \
                eval_bar(label, sum(len(r) for r in rows.values()), quiet) as advance:
            return evaluate_lite(model, eval_ds, rows, micro, device, advance)  # type: ignore[arg-type]

    def save(path: Path, ev: dict[str, float] | None = None) -> None:
        state = {"step": step, "config": asdict(cfg), "data_fingerprint": fingerprint, "optimizer": opt.state_dict(),
                 "scheduler": sched.state_dict(), "sampler": sampler.state(), "rng": capture_rng(), "carry": [],
                 "best_key": list(best) if best is not None else None, "best_step": best_step,
                 "total_steps": steps_total}
        save_checkpoint(path, model, train_state=state, metrics=ev, data_fingerprint=fingerprint)

    stopped_by = None
    with StopFlag() as stop:
        while step < steps_total:
            step += 1
            times.start()
            batch = {k: v.to(device) for k, v in sampler.next().items()}
            times.mark("data_s")
            lr = sched.get_last_lr()[0]
            sums = dict.fromkeys(("loss", "task_loss", "halt_loss", "token_accuracy", "exact_accuracy", "cycles"), 0.0)
            for lo in range(0, cfg.batch, micro):
                inp, lab = batch["inputs"][lo:lo + micro], batch["labels"][lo:lo + micro]
                logits, probs = lite_forward(model, inp)
                loss, m = lite_loss(logits, lab, probs, cfg.lite_ignore_pad)
                times.mark("forward_s")
                (loss * (micro / cfg.batch)).backward()
                times.mark("backward_s")
                g = grid_metrics(logits.detach(), lab.long())
                part = {"loss": float(loss.detach()), "task_loss": float(m["task_loss"]),
                        "halt_loss": float(m["halt_loss"]), "cycles": float(len(probs))}
                for k, v in part.items():
                    sums[k] += v * micro / cfg.batch
                for k, v in g.items():
                    sums[k] += v / cfg.batch
            clip = 1.0 if cfg.grad_clip is None else cfg.grad_clip  # the script clips at 1.0
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            times.mark("optimizer_s")
            times.end_step()
            if on_step is not None:
                on_step(step)
            if step % cfg.log_every == 0 or step == steps_total:
                cycles = sums.pop("cycles")
                rec = {"step": step, "epoch": sampler.epoch, **sums, "mean_steps": cycles, "lr": lr,
                       "samples_per_s": cfg.batch * times.steps / max(time.perf_counter() - t_window, 1e-9),
                       **times.record()}
                times.reset()
                t_window = time.perf_counter()
                log.write(rec)
                if trackers is not None:
                    trackers.log("train", rec)
                progress.line({**rec, "halted": cfg.batch}, step - start)
            ev = None
            if eval_rows and cfg.eval_every and (step % cfg.eval_every == 0 or step == steps_total):
                ev = run_eval(eval_rows, f"eval, step {step}")
                if arc_tasks:
                    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                        ev.update(arc_score(model, arc_tasks, {}, str(device), batch=micro, seed=cfg.seed))
                eval_log.write({"step": step, **ev})
                if trackers is not None:
                    trackers.log("eval", {"step": step, **ev})
                if best is None or best_key(ev) > best:
                    best, best_step = best_key(ev), step
                    if cfg.full_eval_on_best and sum(len(r) for r in eval_rows.values()) < eval_ds.num_examples:
                        full = run_eval(eval_subset(eval_ds, eval_ds.num_examples, cfg.seed), f"full eval, step {step}")
                        eval_log.write({"step": step, "full": True, **full})
                        if trackers is not None:
                            trackers.log("full", {"step": step, **full})
                        ev.update({f"full_{k}": v for k, v in full.items()})
                    save(out / "best.pt", ev)
                t_window = time.perf_counter()  # eval time is not training throughput
            if stop.signum is not None or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) \
                    or step == steps_total:
                save(ckdir / f"step_{step}.pt", ev)
                prune_checkpoints(ckdir, cfg.keep_last)
                t_window = time.perf_counter()
            if stop.signum is not None:
                stopped_by = stop.signum
                break
    sampler.close()
    log.close()
    eval_log.close()
    if trackers is not None:
        trackers.close()
    return {"step": step, "total_steps": steps_total, "stopped_by": stopped_by,
            "checkpoint": str(ckdir / f"step_{step}.pt"), "best_step": best_step,
            "best": list(best) if best is not None else None}
