"""Checkpoints: native save/load and importers for the foreign formats users actually have.

Recognised inputs (`load_checkpoint` tells them apart by content, never by file name):
- `hrm-edge`: our own file, `{"format": "hrm-edge", "config", "model", "train_state"}` with a
  JSON sidecar; written atomically (temp file + rename).
- `lite-script`: the first user's train_arc_full.py dicts (`model_state_dict`,
  `optimizer_state_dict`, `scheduler_state_dict`, `epoch`, `global_step`, `best_val_loss`, maybe
  `config`); the config comes from `config`, else the `_info.json` beside the file, else the
  tensor shapes (the head count cannot be read from shapes: the script's default, 8, is assumed
  and said so).
- `hrm-reference`: sapientinc/HRM `step_N` files, the loss head's state dict with keys under
  `model.inner.` (and `_orig_mod.` when compiled); the config from the `arch:` section of
  `all_config.yaml` in the same folder, else inferred from shapes.
- `trm-reference`: TinyRecursiveModels `step_N` files, the same layout with only `L_level` (told
  apart from HRM by the absence of `H_level`, and by `arch.name` when recorded).
- bare state dicts of either family with our (= the original) module names.
Anything else is one `HrmEdgeError` naming the file and what was expected.

Every loaded model computes in float32 (what export, the runtimes and their parity checks expect);
`meta["trained_dtype"]` says what it was trained in: a native file's `forward_dtype`, a reference run's
`arch.forward_dtype`, else the dtype of its stored `H_init` (the references create it in their forward
dtype, bfloat16 by default). `set_forward_dtype("bfloat16")` / `TorchRunner(dtype="bfloat16")` run such a
checkpoint the way its reference evaluates it.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hrm_edge import __version__
from hrm_edge.config import ActV1Config, HRMConfig, LiteConfig, TrmConfig, config_from_dict, config_to_dict
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import atomic_write_bytes, atomic_write_json, file_sha256, read_json
from hrm_edge.model import build_model
from hrm_edge.model.base import HRMBase
from hrm_edge.model.checkpoint_file import read_torch_file, sidecar_path
from hrm_edge.model.reference_data import canvas_from_data_path

NATIVE_FORMAT = "hrm-edge"


@dataclass
class LoadedCheckpoint:
    """A model ready for inference plus what the file said about its training."""

    model: HRMBase
    config: HRMConfig
    source_format: str
    path: str
    train_state: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)  # step, epoch, best metric, notes
    sha256: str = ""


def save_checkpoint(path: str | Path, model: HRMBase, *, train_state: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None, data_fingerprint: str | None = None) -> Path:
    """Write a native checkpoint and its JSON sidecar (`<path>.json` beside `<path>`)."""
    path = check_checkpoint_out(path)
    train_state = dict(train_state or {})
    payload = {
        "format": NATIVE_FORMAT,
        "hrm_edge_version": __version__,
        "config": config_to_dict(model.config),  # type: ignore[arg-type]
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_state": train_state,
    }
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    sidecar = {
        "format": NATIVE_FORMAT, "hrm_edge_version": __version__, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": payload["config"], "step": train_state.get("step"), "epoch": train_state.get("epoch"),
        "best_metric": train_state.get("best_metric"), "metrics": metrics or {},
        "data_fingerprint": data_fingerprint, "params": model.count_params(), "sha256": file_sha256(path),
        "bytes": path.stat().st_size,  # lets a later load tell "truncated: N of M bytes"
    }
    atomic_write_json(sidecar_path(path), sidecar)
    return path


def check_checkpoint_out(path: str | Path, *, new: bool = False, force: bool = False,
                         sidecar: bool = True) -> Path:
    """Refuse, before any work, a checkpoint path that cannot be written or would collide with its sidecar.

    `new=True` (the commands that make a checkpoint from nothing: `init`, `convert`) also refuses an existing
    file unless `force`: `init --out hrm_arc_best.pt` must not replace a trained model. Whatever `force` says,
    an existing `<stem>.json` that is not an hrm-edge sidecar is refused: `init --out mytask.pt` once destroyed
    the ARC task `mytask.json` beside it. (The trainer rewrites its own best.pt / step files: `new=False`.)
    """
    from hrm_edge.fileio import check_output

    path = Path(path)
    side = sidecar_path(path)
    if side == path:
        raise HrmEdgeError("a checkpoint name must not end in .json: its JSON sidecar is written beside it as "
                           "<name>.json", path)
    check_output(path, "file", "checkpoint")
    if new and path.exists() and not force:
        raise HrmEdgeError("already exists; pass --force to replace it", path)
    if sidecar:
        check_output(side, "file", "checkpoint sidecar")
        if new and side.is_file() and not _is_native_sidecar(side):
            raise HrmEdgeError(f"exists and is not an hrm-edge checkpoint sidecar; writing {path.name} would "
                               f"replace it with one (choose another checkpoint name)", side)
    return path


def _is_native_sidecar(path: Path) -> bool:
    """Whether a JSON file is one save_checkpoint wrote (format "hrm-edge"), so replacing it loses nothing else."""
    import json

    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(obj, dict) and obj.get("format") == NATIVE_FORMAT


def save_lite_script(path: str | Path, model: HRMBase) -> Path:
    """Write a lite model in the first user's train_arc_full.py format (`hrm_arc_best.pt`'s dict).

    Empty optimizer/scheduler states, step 0 and no validation loss: what the script's dict holds
    before training, so walkthroughs and tests can start from the user's own file format.
    """
    cfg = model.config
    if cfg.family != "lite":
        raise HrmEdgeError(f"the lite-script format holds lite models; this one is {cfg.family}")
    payload = {
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state_dict": {}, "scheduler_state_dict": {}, "epoch": 0, "global_step": 0,
        "best_val_loss": None,
        "config": {"num_heads": cfg.num_heads, "max_cycles": cfg.max_cycles, "dropout": cfg.dropout,  # type: ignore[attr-defined]
                   "seq_len": cfg.seq_len},
    }
    path = Path(path)
    atomic_write_bytes(path, lambda f: torch.save(payload, f))
    return path


# --------------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------------
def _torch_load(path: Path) -> Any:
    return read_torch_file(path)


def _strip(sd: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for k, v in sd.items():
        for p in prefixes:
            while k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def _count_layers(sd: dict[str, Any], prefix: str) -> int:
    idx = {int(m.group(1)) for k in sd if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(idx) + 1 if idx else 0


def _is_lite_state(sd: dict[str, Any]) -> bool:
    return "token_embedding.weight" in sd and "halt_predictor.weight" in sd


def _is_act_state(sd: dict[str, Any]) -> bool:
    return "embed_tokens.embedding_weight" in sd and "q_head.weight" in sd


def infer_lite_config(sd: dict[str, Any], given: dict[str, Any] | None = None) -> tuple[LiteConfig, list[str]]:
    """LiteConfig from the script's MODEL_CONFIG (when given) and the tensor shapes."""
    notes: list[str] = []
    given = dict(given or {})
    vocab, hidden = sd["token_embedding.weight"].shape
    kw: dict[str, Any] = dict(vocab_size=int(vocab), hidden_size=int(hidden),
                              H_layers=_count_layers(sd, "h_layers."), L_layers=_count_layers(sd, "l_layers."),
                              ff_dim=int(sd["h_layers.0.linear1.weight"].shape[0]))
    if "pos_encoding.pe" in sd:
        kw["max_len"] = int(sd["pos_encoding.pe"].reshape(-1, hidden).shape[0])
    heads = given.get("num_heads")
    if heads is None:
        heads = 8 if hidden % 8 == 0 else 1
        notes.append(f"num_heads not recorded; assumed {heads} (the script's default)")
    kw["num_heads"] = int(heads)
    kw["max_cycles"] = int(given.get("max_cycles", 8))
    kw["dropout"] = float(given.get("dropout", 0.1))
    seq_len = int(given.get("seq_len", 900))
    canvas = int(round(seq_len**0.5))
    if canvas * canvas != seq_len:
        raise HrmEdgeError(f"lite config seq_len {seq_len} is not a square canvas")
    kw["canvas"] = canvas
    return LiteConfig(**kw), notes


_ARCH_KEYS = ("num_heads", "H_cycles", "L_cycles", "halt_max_steps", "halt_exploration_prob", "expansion",
              "rms_norm_eps", "rope_theta")


def _reference_kwargs(cls: type, sd: dict[str, Any], arch: dict[str, Any],
                      defaults: tuple[tuple[str, int], ...], notes: list[str]) -> dict[str, Any]:
    """What ACT v1 and TRM state dicts say alike: I/O shapes and the `arch:` keys (expansion: `_expansion`)."""
    vocab, hidden = sd["embed_tokens.embedding_weight"].shape
    kw: dict[str, Any] = dict(vocab_size=int(vocab), hidden_size=int(hidden))
    if "puzzle_emb.weights" in sd:
        kw["num_puzzle_identifiers"], kw["puzzle_emb_ndim"] = map(int, sd["puzzle_emb.weights"].shape)
    else:
        kw["puzzle_emb_ndim"] = 0
    for key in _ARCH_KEYS:
        if key in arch:
            kw[key] = type(getattr(cls, key))(arch[key]) if key != "expansion" else float(arch[key])
    for key, default in defaults:
        if key not in kw:
            kw[key] = default
            notes.append(f"{key} not recorded; assumed {default} (the reference ARC default)")
    kw["forward_dtype"] = "float32"
    return kw


def _expansion(given: float | None, tables: list[tuple[str, torch.Tensor, int]]) -> float:
    """The SwiGLU expansion: the recorded one, else the reference default 4 if every stored width follows
    from it, else one read back from a width; each `(name, gate_up weight, features)` must then agree."""
    from hrm_edge.model.layers import swiglu_width

    def fits(e: float) -> bool:
        return all(w.shape[0] == 2 * swiglu_width(f, e) for _, w, f in tables)

    candidates = [given] if given is not None else [4.0] + [(w.shape[0] // 2) * 1.5 / f for _, w, f in tables]
    for e in candidates:
        if fits(e):
            return e
    name, w, _ = next((n, w, f) for n, w, f in tables if w.shape[0] != 2 * swiglu_width(f, candidates[0]))
    raise HrmEdgeError(f"{name}: SwiGLU width {w.shape[0] // 2} does not follow from expansion {candidates[0]}")


def _canvas(tokens: int) -> int:
    side = int(round(max(tokens, 0) ** 0.5))
    if side * side != tokens or side == 0:
        raise HrmEdgeError(f"{tokens} token positions are not a square canvas")
    return side


CanvasHint = tuple[int, str, bool]  # (canvas, how it was found, given explicitly by the user)


def _canvas_of(stored: int | None, hint: CanvasHint | None, notes: list[str]) -> int:
    """The canvas the weights store (a table sized by the sequence), else the hint, else ARC's 30x30 with a note.

    An explicit hint (`--canvas`) that disagrees with a stored canvas is an error."""
    if stored is not None:
        if hint is not None and hint[2] and hint[0] != stored:
            raise HrmEdgeError(f"the weights store canvas {stored} (a table sized by the sequence); "
                               f"--canvas {hint[0]} disagrees")
        return stored
    if hint is not None:
        notes.append(hint[1])
        return hint[0]
    notes.append("sequence length not stored (RoPE or no positions, attention) and all_config.yaml names no data "
                 "path that says it; assumed the ARC canvas 30x30 (--canvas N to override)")
    return 30


def infer_act_config(sd: dict[str, Any], arch: dict[str, Any] | None = None,
                     canvas: CanvasHint | None = None) -> tuple[ActV1Config, list[str]]:
    """ActV1Config from the reference's `arch:` section (when found), the tensor shapes and the canvas hint."""
    notes: list[str] = []
    kw = _reference_kwargs(ActV1Config, sd, dict(arch or {}),
                           (("num_heads", 8), ("H_cycles", 2), ("L_cycles", 2), ("halt_max_steps", 16)), notes)
    kw.update(H_layers=_count_layers(sd, "H_level.layers."), L_layers=_count_layers(sd, "L_level.layers."))
    kw["pos_encodings"] = "learned" if "embed_pos.embedding_weight" in sd else "rope"
    stored = None
    if kw["pos_encodings"] == "learned":
        puzzle_len = -(kw["puzzle_emb_ndim"] // -kw["hidden_size"])
        stored = _canvas(sd["embed_pos.embedding_weight"].shape[0] - puzzle_len)
    kw["canvas"] = _canvas_of(stored, canvas, notes)
    kw["expansion"] = _expansion(kw.get("expansion"), [(f"{lv}_level.layers.0.mlp", sd[f"{lv}_level.layers.0.mlp."
                                                         "gate_up_proj.weight"], kw["hidden_size"]) for lv in "HL"])
    return ActV1Config(**kw), notes


def infer_trm_config(sd: dict[str, Any], arch: dict[str, Any] | None = None,
                     canvas: CanvasHint | None = None) -> tuple[TrmConfig, list[str]]:
    """TrmConfig from the reference's `arch:` section (when found), the tensor shapes and the canvas hint.

    The canvas is read from a table sized by the sequence (learned positions, or mlp_t's width); with
    RoPE or no positions and attention nothing stores it: the hint (`--canvas`, or all_config.yaml's data
    path, `reference_data.py`) decides, else ARC's 30x30 with a note. `no_ACT_continue: False` (halt where
    q_halt > q_continue and train that target) is refused: hrm-edge's TRM is the reference's default rule.
    """
    notes: list[str] = []
    arch = dict(arch or {})
    if arch.get("no_ACT_continue", True) is not True:
        raise HrmEdgeError(f"all_config.yaml sets no_ACT_continue: {arch['no_ACT_continue']!r}; hrm-edge's TRM is "
                           "the reference default no_ACT_continue: True (halt where q_halt > 0, no q_continue "
                           "target), and a model trained the other way halts by another rule")
    kw = _reference_kwargs(TrmConfig, sd, arch,
                           (("num_heads", 8), ("H_cycles", 3), ("L_cycles", 4), ("halt_max_steps", 16)), notes)
    kw["L_layers"] = _count_layers(sd, "L_level.layers.")
    kw["mlp_t"] = "L_level.layers.0.mlp_t.gate_up_proj.weight" in sd
    if "embed_pos.embedding_weight" in sd:
        kw["pos_encodings"] = "learned"
    elif arch.get("pos_encodings") in ("rope", "none"):
        kw["pos_encodings"] = arch["pos_encodings"]
    else:
        kw["pos_encodings"] = "rope"
        notes.append("pos_encodings not recorded; assumed rope (the reference default)")
    if "puzzle_emb_len" in arch:
        kw["puzzle_emb_len"] = int(arch["puzzle_emb_len"])
    elif kw["puzzle_emb_ndim"] > 0:
        kw["puzzle_emb_len"] = 16
        notes.append("puzzle_emb_len not recorded; assumed 16 (the reference default)")
    else:
        kw["puzzle_emb_len"] = 0
    puzzle_len = kw["puzzle_emb_len"] or -(kw["puzzle_emb_ndim"] // -kw["hidden_size"])
    table = sd.get("embed_pos.embedding_weight", sd.get("L_level.layers.0.mlp_t.down_proj.weight"))
    kw["canvas"] = _canvas_of(_canvas(table.shape[0] - puzzle_len) if table is not None else None, canvas, notes)
    tables = [("L_level.layers.0.mlp", sd["L_level.layers.0.mlp.gate_up_proj.weight"], kw["hidden_size"])]
    if kw["mlp_t"]:
        positions = kw["canvas"] ** 2 + puzzle_len
        tables.append(("L_level.layers.0.mlp_t", sd["L_level.layers.0.mlp_t.gate_up_proj.weight"], positions))
    kw["expansion"] = _expansion(kw.get("expansion"), tables)
    return TrmConfig(**kw), notes


def _reference_dtype(sd: dict[str, Any], arch: dict[str, Any] | None, path: Path) -> str:
    """The dtype a reference run trained in: `arch.forward_dtype` when all_config.yaml records it, else the
    dtype of the stored `H_init` (the references create it in forward_dtype, bfloat16 by default)."""
    from hrm_edge.config import FORWARD_DTYPES

    h_init = sd.get("H_init")
    stored = str(h_init.dtype).removeprefix("torch.") if isinstance(h_init, torch.Tensor) else "float32"
    name = str((arch or {}).get("forward_dtype") or stored)
    if name not in FORWARD_DTYPES:
        raise HrmEdgeError(f"trained in {name}; hrm-edge runs reference checkpoints trained in "
                           f"{' or '.join(FORWARD_DTYPES)}", path)
    return name


def _reference_family(sd: dict[str, Any], arch: dict[str, Any] | None, path: Path) -> str:
    """`act-v1` (H_level and L_level) or `trm` (L_level only); a recorded `arch.name` must agree."""
    family = "act-v1" if any(k.startswith("H_level.") for k in sd) else "trm"
    name = str((arch or {}).get("name", ""))
    module = name.split("@")[0].rsplit(".", 1)[-1]
    if name and module not in ("trm", "hrm", "hrm_act_v1"):
        raise HrmEdgeError(f"all_config.yaml names architecture {name!r}; hrm-edge loads HRM ACT v1 "
                           "(hrm_act_v1 / recursive_reasoning.hrm) and TRM (recursive_reasoning.trm)", path)
    if name and (module == "trm") != (family == "trm"):
        raise HrmEdgeError(f"all_config.yaml names {name!r} but the weights are a{'' if family == 'trm' else 'n'} "
                           f"{family} state dict ({'no' if family == 'trm' else 'has'} H_level)", path)
    return family


def _read_reference_config(folder: Path) -> dict[str, Any] | None:
    """The run's all_config.yaml (None when absent); it must have an `arch:` section."""
    path = folder / "all_config.yaml"
    if not path.exists():
        return None
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except Exception as exc:
        raise HrmEdgeError(f"cannot parse YAML: {exc}", path) from None
    arch = data.get("arch") if isinstance(data, dict) else None
    if not isinstance(arch, dict):
        raise HrmEdgeError("has no `arch:` section", path)
    return data


def _build_loaded(cfg: HRMConfig, sd: dict[str, Any], path: Path, fmt: str, **extra: Any) -> LoadedCheckpoint:
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise HrmEdgeError(f"{fmt} state dict does not match a {cfg.family} model: "
                           f"missing {list(missing)[:4]}, unexpected {list(unexpected)[:4]}", path)
    model.eval()
    return LoadedCheckpoint(model=model, config=cfg, source_format=fmt, path=str(path), **extra)


def load_checkpoint(path: str | Path, canvas: int | None = None) -> LoadedCheckpoint:
    """Load any recognised checkpoint into an eval-mode model (see the module docstring).

    `canvas` (`--canvas`) sets the canvas of a checkpoint that does not store it (RoPE or no positions,
    attention); where the weights or the file's config do store it, a different value is an error.
    """
    path = Path(path)
    if canvas is not None and not (isinstance(canvas, int) and canvas >= 1):
        raise HrmEdgeError(f"--canvas must be a positive number of cells, got {canvas!r}")
    loaded = _load(path, canvas)
    if canvas is not None and loaded.config.canvas != canvas:
        raise HrmEdgeError(f"the checkpoint records canvas {loaded.config.canvas}; --canvas {canvas} disagrees "
                           "(only files that do not store it take one)", path)
    return loaded


def _load(path: Path, canvas: int | None) -> LoadedCheckpoint:
    obj = _torch_load(path)
    sha = file_sha256(path)
    if not isinstance(obj, dict):
        raise HrmEdgeError(f"expected a dict (hrm-edge checkpoint, training-script dict or state dict), "
                           f"found {type(obj).__name__}", path)
    if obj.get("format") == NATIVE_FORMAT:
        try:
            cfg = config_from_dict(obj["config"])
        except HrmEdgeError as exc:
            raise HrmEdgeError(str(exc), path) from None
        ts = obj.get("train_state", {}) or {}
        meta = {k: ts.get(k) for k in ("step", "epoch", "best_metric", "best_metric_name") if k in ts}
        meta["trained_dtype"] = getattr(cfg, "forward_dtype", "float32")
        if hasattr(cfg, "forward_dtype"):
            cfg.forward_dtype = "float32"  # loaded models compute in fp32 (module docstring)
        return _build_loaded(cfg, obj["model"], path, NATIVE_FORMAT, train_state=ts, meta=meta, sha256=sha)
    if "model_state_dict" in obj:
        sd = _strip(obj["model_state_dict"], ("_orig_mod.", "module."))
        if not _is_lite_state(sd):
            raise HrmEdgeError("has `model_state_dict` but not the lite training script's module names "
                               "(token_embedding, h_layers, halt_predictor)", path)
        given = obj.get("config") if isinstance(obj.get("config"), dict) else None
        info_path = path.with_name(path.stem + "_info.json")
        info = None
        if info_path.exists():
            info = read_json(info_path, "training-script info JSON")
            if given is None:
                given = info.get("config") or info.get("model_config")
        cfg, notes = infer_lite_config(sd, given)
        meta = {"step": obj.get("global_step"), "epoch": obj.get("epoch"), "best_metric": obj.get("best_val_loss"),
                "best_metric_name": "val_loss", "notes": notes, "trained_dtype": "float32"}
        if info is not None:
            meta["info"] = info
        ts = {k: obj[k] for k in ("optimizer_state_dict", "scheduler_state_dict") if k in obj}
        return _build_loaded(cfg, sd, path, "lite-script", train_state=ts, meta=meta, sha256=sha)
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise HrmEdgeError("unrecognised checkpoint dict: expected an hrm-edge checkpoint ('format'), a lite "
                           "training-script dict ('model_state_dict') or a state dict of tensors; found keys "
                           f"{sorted(obj)[:6]}", path)
    sd = _strip(obj, ("_orig_mod.", "model.inner.", "module."))
    if _is_lite_state(sd):
        cfg, notes = infer_lite_config(sd)
        return _build_loaded(cfg, sd, path, "lite-state-dict", meta={"notes": notes, "trained_dtype": "float32"},
                             sha256=sha)
    if _is_act_state(sd):
        ref = any(k.startswith(("model.inner.", "_orig_mod.model.inner.")) for k in obj)
        run_config = _read_reference_config(path.parent) if ref else None
        arch = run_config["arch"] if run_config is not None else None
        family = _reference_family(sd, arch, path)
        hint: CanvasHint | None = (canvas, f"canvas {canvas}x{canvas} given (--canvas)", True) if canvas else None
        if hint is None:
            found = canvas_from_data_path(run_config, path.parent)
            hint = (*found, False) if found is not None else None
        try:
            cfg, notes = (infer_trm_config if family == "trm" else infer_act_config)(sd, arch, hint)  # type: ignore
        except HrmEdgeError as exc:
            raise HrmEdgeError(str(exc), path) from None
        except KeyError as exc:
            raise HrmEdgeError(f"{family} state dict lacks {exc.args[0]}", path) from None
        if arch is not None:
            notes.append("config from all_config.yaml")
        m = re.search(r"step_(\d+)", path.name)
        meta = {"notes": notes, "step": int(m.group(1)) if m else None,
                "trained_dtype": _reference_dtype(sd, arch, path)}
        fmt = (("trm" if family == "trm" else "hrm") + "-reference") if ref else f"{family}-state-dict"
        return _build_loaded(cfg, sd, path, fmt, meta=meta, sha256=sha)
    raise HrmEdgeError("state dict is not an HRM model: expected lite keys (token_embedding.weight, "
                       "halt_predictor.weight) or ACT v1 / TRM keys (model.inner.embed_tokens.embedding_weight, "
                       f"model.inner.q_head.weight); found {sorted(obj)[:4]}", path)


def describe(ck: LoadedCheckpoint | None, cfg: HRMConfig, model: HRMBase) -> dict[str, Any]:
    """The facts `hrm-edge info` prints, as one JSON-ready dict."""
    params = model.count_params()
    out: dict[str, Any] = {
        "family": cfg.family,
        "dense_params": params["dense"],
        "puzzle_emb_params": params["puzzle_emb"],
        "params_per_module": params["per_module"],
        "num_puzzle_identifiers": cfg.num_puzzle_identifiers,
        "act": {"max_steps": cfg.max_steps, "halt_modes": list(model.halt_modes),
                "min_halt_steps": model.min_halt_steps, "adaptive_rule": model.adaptive_rule},
        "config": config_to_dict(cfg),
        "source_format": ck.source_format if ck else "preset",
        # which dtype each command computes in (the loader gives fp32 models; see the module docstring)
        "dtypes": _dtypes(cfg.family, ck.meta.get("trained_dtype") if ck else None),
    }
    if ck is not None:
        out.update(path=ck.path, sha256=ck.sha256, **{k: v for k, v in ck.meta.items() if k != "info"})
    return out


def _dtypes(family: str, trained: str | None) -> dict[str, str]:
    """Which dtype each command computes in: the graphs are fp32-referenced; the PyTorch runtime and the
    trainer run the references' bf16 forward on request (lite has none)."""
    if family == "lite":
        return {"export, solve, compare, bench": "float32", "train": "float32"}
    return {"export, bench": "float32",
            "solve, compare": "--torch-dtype (default float32" + (f"; trained: {trained})" if trained else ")"),
            "train": "--dtype (default float32)"}


__all__ = ["LoadedCheckpoint", "load_checkpoint", "save_checkpoint", "describe", "atomic_write_bytes",
           "atomic_write_json", "file_sha256", "dataclasses"]
