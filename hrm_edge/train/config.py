"""`TrainConfig`: every knob of a training run, and its TOML form (RUN/config.toml, `--config FILE`).

The TOML file holds the training options at the top level and model-config overrides in a
`[model]` table (fields of the preset's config class, e.g. `hidden_size = 128`). A run writes the
complete resolved file, so `hrm-edge train --config RUN/config.toml --out NEW` repeats it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from hrm_edge.errors import HrmEdgeError
from hrm_edge.train.loss import LOSS_KINDS

OPTIMIZERS = ("adam-atan2", "adamw")
AMP_MODES = ("off", "bf16", "fp16")
EVAL_SPLITS = ("auto", "val", "test")  # auto: val/ when the dataset has one (build-data --validation), else test/
DTYPES = ("float32", "bfloat16")  # = config.FORWARD_DTYPES (train/config.py stays torch- and model-free)

# The references' training recipes: their config/cfg_pretrain.yaml values (sapientinc/HRM and
# SamsungSAILMontreal/TinyRecursiveModels ship the same ones: global_batch_size 768, epochs 100000, lr 1e-4,
# lr_min_ratio 1.0, lr_warmup_steps 2000, beta1 0.9, beta2 0.95, weight_decay 0.1, puzzle_emb_weight_decay
# 0.1, puzzle_emb_lr 1e-2; TRM adds seed 0, ema False, freeze_weights False, this trainer's defaults) and
# their models' forward_dtype (bfloat16, the default of both model configs). Their optimizer (Adam-atan2),
# loss (stablemax) and no gradient clipping are this trainer's defaults already. `--recipe` puts these
# under --config and the command line: anything given there wins. The README's training table lists
# every default that differs from them and why.
_REFERENCE_PRETRAIN: dict[str, Any] = {"batch": 768, "epochs": 100000.0, "lr": 1e-4, "lr_min_ratio": 1.0,
                                       "warmup": 2000, "beta1": 0.9, "beta2": 0.95, "weight_decay": 0.1,
                                       "puzzle_weight_decay": 0.1, "puzzle_lr": 1e-2, "seed": 0,
                                       "optimizer": "adam-atan2", "loss": "stablemax", "dtype": "bfloat16"}
RECIPES: dict[str, dict[str, Any]] = {"hrm": dict(_REFERENCE_PRETRAIN), "trm": dict(_REFERENCE_PRETRAIN)}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    preset: str | None = None
    init_from: str | None = None
    resume_from: str | None = None  # a train_arc_full.py hrm_arc_step_N.pt to continue (lite)
    model: dict[str, Any] = field(default_factory=dict)
    steps: int | None = None
    epochs: float | None = None
    batch: int = 32
    micro_batch: int | str | None = None  # an int, "auto" (halved on out-of-memory), or None (= batch)
    lr: float = 1e-4
    puzzle_lr: float = 1e-2
    weight_decay: float = 0.1
    puzzle_weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    warmup: int | None = None
    lr_min_ratio: float = 0.1
    optimizer: str = "adam-atan2"
    loss: str = "stablemax"
    checkpoint_every: int = 500
    keep_last: int = 3
    eval_every: int = 250
    eval_samples: int = 256
    log_every: int = 10
    seed: int = 0
    amp: str = "off"
    ema: float | None = None
    freeze_weights: bool = False
    dtype: str = "float32"  # forward dtype: float32, or bfloat16 (the references' forward: carry and blocks bf16)
    recipe: str | None = None  # which RECIPES entry the command line layered under the options (a record)
    device: str = "auto"
    threads: int | None = None
    nan_rollback: int = 3
    grad_clip: float | None = None  # max gradient norm; None: the family's (lite: 1.0, act-v1: none)
    lite_ignore_pad: bool = False
    eval_split: str = "auto"  # what evaluations and best.pt read: val/ (auto: when the data has it), else test/
    eval_tasks: int = 0  # pass@1/pass@2 on this many evaluation tasks at each evaluation (0 = off)
    full_eval_every: int = 0  # evaluate the whole test split every F steps (0 = never)
    freeze_trunk_steps: int = 0  # train only the puzzle-embedding rows for the first N steps
    full_eval_on_best: bool = True  # evaluate the whole test split whenever the subset's best improves
    workers: int | None = None  # DataLoader worker processes; None: 2 on CUDA, 0 on the CPU
    prefetch: int = 2  # batches each worker reads ahead
    compile: bool = False  # torch.compile the model's segment (the recurrent core) for training
    compile_backend: str = "inductor"  # torch.compile backend (aot_eager: graph capture only, no codegen)
    tensorboard: bool = False  # also log to RUN/tensorboard (needs the `tensorboard` package)
    wandb: bool = False  # also log to Weights & Biases, offline, in RUN/wandb (needs the `wandb` package)

    def validate(self) -> None:
        def bad(msg: str) -> None:
            raise HrmEdgeError(msg)

        if not self.data:
            bad("--data is required")
        if sum(x is not None for x in (self.preset, self.init_from, self.resume_from)) != 1:
            bad("give exactly one of --preset NAME, --init-from CKPT or --resume-from SCRIPT_CKPT")
        if (self.steps is None) == (self.epochs is None):
            bad("give exactly one of --steps N or --epochs E")
        if self.steps is not None and self.steps < 1:
            bad(f"--steps must be >= 1, got {self.steps}")
        if self.epochs is not None and not (self.epochs > 0 and math.isfinite(self.epochs)):
            bad(f"--epochs must be > 0, got {self.epochs}")
        if self.batch < 1:
            bad(f"--batch must be >= 1, got {self.batch}")
        if self.micro_batch == "auto":
            pass
        elif self.micro_batch is not None and not (isinstance(self.micro_batch, int) and 1 <= self.micro_batch
                                                   <= self.batch and self.batch % self.micro_batch == 0):
            bad(f"--micro-batch {self.micro_batch} must divide --batch {self.batch}")
        for name in ("lr", "puzzle_lr", "weight_decay", "puzzle_weight_decay"):
            v = getattr(self, name)
            if not (v >= 0 and math.isfinite(v)):
                bad(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
        if not (0.0 <= self.lr_min_ratio <= 1.0):
            bad(f"--lr-min-ratio must be in [0, 1], got {self.lr_min_ratio}")
        if not (0.0 <= self.beta1 < 1.0 and 0.0 <= self.beta2 < 1.0):
            bad("beta1 and beta2 must be in [0, 1)")
        if self.warmup is not None and self.warmup < 0:
            bad(f"--warmup must be >= 0, got {self.warmup}")
        for name in ("checkpoint_every", "eval_every", "log_every"):
            if getattr(self, name) < 0:
                bad(f"--{name.replace('_', '-')} must be >= 0 (0 = never), got {getattr(self, name)}")
        if self.log_every == 0:
            bad("--log-every must be >= 1")
        if self.keep_last < 0 or self.eval_samples < 0:
            bad("--keep-last and --eval-samples must be >= 0")
        if self.optimizer not in OPTIMIZERS:
            bad(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.loss not in LOSS_KINDS:
            bad(f"--loss must be one of {', '.join(LOSS_KINDS)}, got {self.loss!r}")
        if self.amp not in AMP_MODES:
            bad(f"--amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.dtype not in DTYPES:
            bad(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.dtype != "float32" and self.amp != "off":
            bad(f"--dtype {self.dtype} is already the references' bf16 forward; drop --amp {self.amp}")
        if self.recipe is not None and self.recipe not in RECIPES:
            bad(f"--recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.ema is not None and not (0.0 < self.ema < 1.0):
            bad(f"--ema must be in (0, 1), got {self.ema}")
        if self.grad_clip is not None and not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
            bad(f"--grad-clip must be a finite number >= 0 (0 = off), got {self.grad_clip}")
        if self.eval_split not in EVAL_SPLITS:
            bad(f"--eval-split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        for name in ("eval_tasks", "full_eval_every", "freeze_trunk_steps"):
            if getattr(self, name) < 0:
                bad(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.nan_rollback < 0:
            bad(f"--nan-rollback must be >= 0 (0 = never roll back), got {self.nan_rollback}")
        if self.workers is not None and self.workers < 0:
            bad(f"--workers must be >= 0, got {self.workers}")
        if self.prefetch < 1:
            bad(f"--prefetch must be >= 1, got {self.prefetch}")
        if self.compile:
            import torch._dynamo

            known = torch._dynamo.list_backends(exclude_tags=())
            if self.compile_backend not in known:
                bad(f"--compile-backend must be one of {', '.join(known)}, got {self.compile_backend!r}")
        if self.threads is not None and self.threads < 1:
            bad(f"--threads must be >= 1, got {self.threads}")

    @property
    def micro(self) -> int:
        return self.micro_batch if isinstance(self.micro_batch, int) else self.batch


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
# Options that shape the saved state: a resumed run must keep them.
STATE_SHAPING = ("data", "preset", "init_from", "model", "batch", "micro_batch", "seed", "optimizer", "ema",
                 "freeze_weights", "dtype")


def with_recipe(options: dict[str, Any]) -> dict[str, Any]:
    """`options` over the values of the recipe they name (`recipe = "hrm"|"trm"`), if any.

    Steps vs epochs: a recipe's `epochs` gives way to `steps` in `options` (give one or the other).
    """
    name = options.get("recipe")
    if name is None:
        return dict(options)
    if name not in RECIPES:
        raise HrmEdgeError(f"--recipe must be one of {', '.join(RECIPES)}, got {name!r}")
    base = dict(RECIPES[name])
    if "steps" in options or "epochs" in options:
        base.pop("epochs", None)
    return {**base, **options}


def read_config_toml(path: str | Path) -> dict[str, Any]:
    """The options of a TOML config file (`[model]` kept as a dict); unknown keys are an error."""
    path = Path(path)
    if not path.is_file():
        raise HrmEdgeError("no such config file", path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HrmEdgeError(f"not valid TOML ({exc})", path) from None
    unknown = sorted(set(data) - FIELDS)
    if unknown:
        raise HrmEdgeError(f"unknown training options {', '.join(unknown)} (known: {', '.join(sorted(FIELDS))})",
                           path)
    if not isinstance(data.get("model", {}), dict):
        raise HrmEdgeError("`model` must be a table of model-config fields", path)
    return data


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v) if not isinstance(v, float) or math.isfinite(v) else f'"{v}"'
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def config_toml(cfg: TrainConfig, model_config: dict[str, Any]) -> str:
    """The resolved config as TOML; unset options (None) are left out, which is how they read back."""
    lines = ["# hrm-edge train: every value this run used (repeat it with --config this-file --out NEW)"]
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.name != "model" and v is not None:
            lines.append(f"{f.name} = {_toml_value(v)}")
    lines.append("\n[model]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in model_config.items() if k != "family"]
    return "\n".join(lines) + "\n"
