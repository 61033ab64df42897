"""`hrm-edge train`: train an ACT v1, TRM or lite model on a `build-data` dataset, resumable to the bit.

Options left unset take their value from `--config FILE.toml` (or, with `--resume`, from the run's
own RUN/config.toml), else the defaults shown; every value used is written to RUN/config.toml.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from hrm_edge.errors import HrmEdgeError

# train_arc_full.py's recipe: what a lite run uses for the options it is not given.
LITE_DEFAULTS: dict[str, Any] = {"optimizer": "adamw", "lr": 3e-4, "weight_decay": 0.01, "beta2": 0.999,
                                 "lr_min_ratio": 0.0}


def train(
    data: Optional[Path] = typer.Option(None, "--data", metavar="DIR",
        help="Dataset folder written by `hrm-edge build-data` "
                                        "(or the reference builder): train/ is trained on, test/ evaluated."),
    preset: Optional[str] = typer.Option(None, "--preset", metavar="NAME",
        help="Start from a fresh model of this preset "
                                         "(tiny, hrm-6m, hrm-27m, tiny-trm, trm-7m, tiny-lite, lite-5.7m); "
                                         "\\[model] in --config overrides its fields."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", metavar="CKPT",
        help="Start from this checkpoint's weights "
                                             "(new puzzle identifiers start at the mean trained row; a TRM table "
                                             "of another shape restarts every row at it, as TRM's reference "
                                             "does)."),
    resume_from: Optional[Path] = typer.Option(None, "--resume-from", metavar="FILE",
        help="Continue a run of the first user's "
                                               "train_arc_full.py from its hrm_arc_step_N.pt (lite: weights, AdamW "
                                               "moments, cosine position and step)."),
    config: Optional[Path] = typer.Option(None, "--config", metavar="FILE",
        help="TOML file with any of these options (names "
                                          "with underscores) and a \\[model] table; command-line options win."),
    out: Path = typer.Option(..., "--out", "-o", metavar="RUN",
        help="Run folder: config.toml, metrics.jsonl, eval.jsonl, "
                             "checkpoints/step_N.pt, best.pt (+ .json sidecars)."),
    steps: Optional[int] = typer.Option(None, "--steps", metavar="N", help="Optimizer steps (one ACT segment each)."),
    epochs: Optional[float] = typer.Option(None, "--epochs", metavar="E",
        help="Or: epochs, counted as the reference does "
                                           "(epochs x groups x mean examples / batch steps)."),
    batch: Optional[int] = typer.Option(None, "--batch", metavar="B",
        help="Global batch: ACT slots per step. \\[default: 32]"),
    micro_batch: Optional[str] = typer.Option(None, "--micro-batch", metavar="N|auto",
        help="Slots per forward/backward pass "
                                              "(gradient accumulation; must divide --batch), or auto: start at "
                                              "--batch and halve on an out-of-memory error (the step is retried, "
                                              "the effective batch unchanged). \\[default: --batch]"),
    lr: Optional[float] = typer.Option(None, "--lr", metavar="RATE",
        help="Peak learning rate of the dense weights. \\[default: 1e-4]"),
    puzzle_lr: Optional[float] = typer.Option(None, "--puzzle-lr", metavar="RATE",
        help="Peak learning rate of the sparse "
                                              "sign-SGD on puzzle-embedding rows. \\[default: 1e-2]"),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", metavar="WD",
        help="Decoupled weight decay of the "
                                                 "dense weights. \\[default: 0.1]"),
    puzzle_weight_decay: Optional[float] = typer.Option(None, "--puzzle-weight-decay", metavar="WD",
        help="Decoupled weight "
                                                        "decay of the puzzle rows. \\[default: 0.1]"),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", metavar="NAME",
        help="Dense optimizer: adam-atan2 (the "
                                            "reference's) or adamw. \\[default: adam-atan2]"),
    loss: Optional[str] = typer.Option(None, "--loss", metavar="NAME",
        help="Token loss: stablemax (the reference's) or softmax "
                                       "cross-entropy. \\[default: stablemax]"),
    warmup: Optional[int] = typer.Option(None, "--warmup", metavar="N",
        help="Linear warmup steps. \\[default: min(2000, 10% of "
                                         "the steps)]"),
    lr_min_ratio: Optional[float] = typer.Option(None, "--lr-min-ratio", metavar="R", help="Cosine decay ends at this "
                                                 "fraction of the peak rate (1 = constant). \\[default: 0.1]"),
    checkpoint_every: Optional[int] = typer.Option(None, "--checkpoint-every", metavar="K",
        help="Save a resumable checkpoint "
                                                   "every K steps (0 = only at the end or on a signal). "
                                                   "\\[default: 500]"),
    keep_last: Optional[int] = typer.Option(None, "--keep-last", metavar="K",
        help="Keep only the newest K step checkpoints "
                                            "(0 = keep all). \\[default: 3]"),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", metavar="E",
        help="Evaluate a fixed random subset of the evaluation split (--eval-split) every E steps (0 = never); "
             "best.pt follows it. \\[default: 250]"),
    eval_samples: Optional[int] = typer.Option(None, "--eval-samples", metavar="N",
        help="Size of that subset. \\[default: 256]"),
    eval_split: Optional[str] = typer.Option(None, "--eval-split", metavar="SPLIT",
        help="What evaluations and best.pt read: val (the demonstration pairs build-data --validation held "
             "out), test, or auto (val when the dataset has it, else test). \\[default: auto]"),
    eval_tasks: Optional[int] = typer.Option(None, "--eval-tasks", metavar="N",
        help="At each evaluation also solve this many "
                                             "evaluation tasks (the dataset's build.json sources) through the "
                                             "`hrm-edge solve` pipeline (8 augmentations, vote) and log pass@1 / "
                                             "pass@2 (0 = off). \\[default: 0]"),
    full_eval_every: Optional[int] = typer.Option(None, "--full-eval-every", metavar="F",
        help="Evaluate the whole evaluation split "
                                                  "every F steps (0 = never). \\[default: 0]"),
    full_eval_on_best: Optional[bool] = typer.Option(None, "--full-eval/--no-full-eval",
        help="Evaluate the whole evaluation split each time the subset's best improves (logged to eval.jsonl with "
             "full: true; its metrics go into best.json as full_*). \\[default: on]"),
    freeze_trunk_steps: Optional[int] = typer.Option(None, "--freeze-trunk-steps", metavar="N",
        help="Train only the puzzle-"
                                                     "embedding rows for the first N steps (new tasks after "
                                                     "--init-from). \\[default: 0]"),
    log_every: Optional[int] = typer.Option(None, "--log-every", metavar="L",
        help="Write a metrics.jsonl line every L steps. "
                                            "\\[default: 10]"),
    seed: Optional[int] = typer.Option(None, "--seed", metavar="S",
        help="Seed of the model init, sampler, exploration and "
                                       "eval subset. \\[default: 0]"),
    amp: Optional[str] = typer.Option(None, "--amp", metavar="MODE",
        help="Mixed precision: off, bf16, or fp16 (CUDA, with a "
                                      "loss scaler). \\[default: off]"),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="DTYPE",
        help="Forward dtype: float32, or bfloat16, the references' own (embeddings, carry and blocks in bf16, "
             "RMSNorm/RoPE/loss in fp32 or wider, fp32 weights). Checked bit-exact against their bf16 step on "
             "the CPU. \\[default: float32]"),
    recipe: Optional[str] = typer.Option(None, "--recipe", metavar="NAME",
        help="hrm or trm: start from the reference's config/cfg_pretrain.yaml values (batch 768, lr 1e-4 "
             "constant after a 2000-step warmup, epochs 100000, ...) and its bf16 forward; --config and "
             "command-line options override them. README: the table of defaults that differ."),
    ema: Optional[float] = typer.Option(None, "--ema", metavar="RATE",
        help="Keep an EMA of the weights at this rate (e.g. 0.999); "
                                        "it is what evaluation uses and checkpoints hold. \\[default: off]"),
    freeze_weights: bool = typer.Option(False, "--freeze-weights", help="Train only the puzzle embedding; the "
                                        "dense weights stay as loaded (TRM's freeze_weights)."),
    device: Optional[str] = typer.Option(None, "--device", metavar="DEVICE",
        help="cpu, cuda, cuda:N or auto. \\[default: auto]"),
    nan_rollback: Optional[int] = typer.Option(None, "--nan-rollback", metavar="K",
        help="A non-finite loss skips its step "
                                               "(logged to events.jsonl); this many in a row reload the newest "
                                               "checkpoint, with the data moving on (0 = never). \\[default: 3]"),
    grad_clip: Optional[float] = typer.Option(None, "--grad-clip", metavar="NORM",
        help="Clip the gradient norm to this (0 = off). "
                                              "\\[default: 1.0 for lite (the script's), off for act-v1]"),
    lite_ignore_pad: Optional[bool] = typer.Option(None, "--lite-ignore-pad/--lite-count-pad", help="lite loss: "
                                                   "leave PAD cells out of the cross-entropy, or count them as "
                                                   "train_arc_full.py does. \\[default: count]"),
    workers: Optional[int] = typer.Option(None, "--workers", metavar="N",
        help="DataLoader worker processes reading batches ahead (pinned memory on CUDA, persistent); the batches "
             "and their order do not depend on it. \\[default: 2 on CUDA, 0 on the CPU]"),
    prefetch: Optional[int] = typer.Option(None, "--prefetch", metavar="N",
        help="Batches each worker reads ahead. \\[default: 2]"),
    compile_: bool = typer.Option(False, "--compile", help="torch.compile the model's recurrent segment for "
                                  "training (inductor; the first steps pay the compile time)."),
    compile_backend: Optional[str] = typer.Option(None, "--compile-backend", metavar="NAME",
        help="torch.compile backend for --compile: inductor (generated kernels) or aot_eager (graph capture "
             "only, compiles in seconds). \\[default: inductor]"),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Also log train/, eval/ and full/ scalars to "
                                     "RUN/tensorboard (pip install 'hrm-edge\\[track]')."),
    wandb: bool = typer.Option(False, "--wandb", help="Also log to Weights & Biases in offline mode, files in "
                               "RUN/wandb (`wandb sync` uploads them later; pip install 'hrm-edge\\[track]')."),
    threads: Optional[int] = typer.Option(None, "--threads", metavar="N",
        help="CPU threads for PyTorch. \\[default: PyTorch's]"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint, "
                                "bit-identically; its config.toml supplies every option not given."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
) -> None:
    """Train an ACT v1, TRM or lite model on a build-data dataset, with checkpoints that resume bit-identically.

    ACT v1 and TRM train the way their references do (carry across batches, stablemax + Q-learning loss,
    Adam-atan2 + sparse puzzle sign-SGD, warmup + cosine); lite the way train_arc_full.py does. Several
    processes: torchrun --nproc_per_node N -m hrm_edge.cli train."""
    from hrm_edge.fileio import check_output
    from hrm_edge.train.config import TrainConfig, read_config_toml, with_recipe

    check_output(out, kind="dir", what="run folder")
    given: dict[str, Any] = {k: v for k, v in dict(
        data=data, preset=preset, init_from=init_from, steps=steps, epochs=epochs, batch=batch,
        micro_batch=micro_batch, lr=lr, puzzle_lr=puzzle_lr, weight_decay=weight_decay,
        puzzle_weight_decay=puzzle_weight_decay, optimizer=optimizer, loss=loss, warmup=warmup,
        lr_min_ratio=lr_min_ratio, checkpoint_every=checkpoint_every, keep_last=keep_last, eval_every=eval_every,
        eval_samples=eval_samples, eval_split=eval_split, log_every=log_every, seed=seed, amp=amp, ema=ema,
        device=device,
        threads=threads, nan_rollback=nan_rollback, resume_from=resume_from, grad_clip=grad_clip,
        lite_ignore_pad=lite_ignore_pad, eval_tasks=eval_tasks, full_eval_every=full_eval_every,
        freeze_trunk_steps=freeze_trunk_steps, freeze_weights=freeze_weights or None,
        full_eval_on_best=full_eval_on_best, workers=workers, prefetch=prefetch, compile=compile_ or None,
        dtype=dtype, recipe=recipe,
        compile_backend=compile_backend,
        tensorboard=tensorboard or None, wandb=wandb or None).items() if v is not None}
    if micro_batch is not None and micro_batch != "auto":
        try:
            given["micro_batch"] = int(micro_batch)
        except ValueError:
            raise HrmEdgeError(f"--micro-batch must be a number or auto, got {micro_batch!r}") from None
    for k in ("data", "init_from", "resume_from"):
        if k in given:
            given[k] = str(Path(given[k]).resolve())
    base: dict[str, Any] = {}
    if resume:
        run_cfg = out / "config.toml"
        if not run_cfg.is_file():
            raise HrmEdgeError("--resume: no config.toml here; not a run folder", path=out)
        base = read_config_toml(run_cfg)
    if config is not None:
        base.update(read_config_toml(config))
    if ("steps" in given and "epochs" in base) or ("epochs" in given and "steps" in base):
        base.pop("steps", None)
        base.pop("epochs", None)
    if any(k in given for k in ("preset", "init_from", "resume_from")):
        for k in ("preset", "init_from", "resume_from"):
            base.pop(k, None)
    merged = with_recipe({**base, **given, "out": str(out)})  # a recipe's values lie under everything given
    cfg = TrainConfig(**merged)
    cfg.validate()
    from hrm_edge.train.metrics import check_trackers

    check_trackers(cfg.tensorboard, cfg.wandb)  # a missing package is said before any work
    no_test = _no_test_split(cfg.data, [k for k in EVAL_OPTIONS if given.get(k)])
    if not resume:
        from hrm_edge.train.trainer import model_family

        if model_family(cfg) == "lite":  # options left unset take train_arc_full.py's values
            cfg = TrainConfig(**{**LITE_DEFAULTS, **merged})
            cfg.validate()

    from hrm_edge.train.trainer import train as run_training

    summary = run_training(cfg, resume=resume, quiet=quiet)
    if summary["stopped_by"] is not None:
        print(f"stopped by signal at step {summary['step']}; saved {summary['checkpoint']}; continue with: "
              f"hrm-edge train --out {out} --resume", file=sys.stderr)
        sys.exit(130 if summary["stopped_by"] == signal.SIGINT else 143)
    best = f", best.pt from step {summary['best_step']}" if summary["best_step"] is not None else ""
    best = ", no best.pt (no test split to rank checkpoints by)" if no_test else best
    print(f"done: {summary['step']} steps; {summary['checkpoint']}{best}")


EVAL_OPTIONS = {"eval_every": "--eval-every", "eval_samples": "--eval-samples", "eval_tasks": "--eval-tasks",
                "full_eval_every": "--full-eval-every", "full_eval_on_best": "--full-eval"}


def _no_test_split(data: str | None, asked: list[str]) -> bool:
    """Whether DATA has no test split; said before any work, since then nothing is evaluated and no best.pt exists.

    best.pt means "the checkpoint with the best evaluation"; without a test split there is no evaluation to rank
    by, so the run writes none and the last checkpoint (latest.json names it) is the one to use. Asking for an
    evaluation option on such a dataset is refused (exit 2) rather than silently ignored.
    """
    root = Path(data) if data else None
    if root is None or not (root / "train" / "dataset.json").is_file():  # not a dataset: the loader says so
        return False
    if (root / "test" / "dataset.json").is_file() or (root / "val" / "dataset.json").is_file():
        return False
    if asked:
        raise HrmEdgeError(f"{' and '.join(EVAL_OPTIONS[k] for k in asked)} evaluate on the test split, and this "
                           "dataset has none (no test/dataset.json); build-data writes one from the tasks' test "
                           "inputs", path=data)
    print(f"note: {data} has no test split: this run evaluates nothing and writes no best.pt; use its last "
          "checkpoint (latest.json names it)", file=sys.stderr, flush=True)
    return True


def register(app: typer.Typer) -> None:
    app.command("train")(train)
