"""The model a training run starts from: a preset or an `--init-from` checkpoint, fitted to the dataset.

Fitted means: the dataset's canvas (a checkpoint's, where no weight depends on it) and puzzle-identifier
count (the table grown, or for TRM replaced as its reference's `load_checkpoint` does), `--dtype`, and
a `[model]` table that may only restate an `--init-from` checkpoint's config.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import torch

from hrm_edge.config import ActV1Config, TrmConfig, preset
from hrm_edge.data.dataset import HrmDataset
from hrm_edge.errors import HrmEdgeError
from hrm_edge.model import build_model
from hrm_edge.model.checkpoint import load_checkpoint
from hrm_edge.train.config import TrainConfig


def build_train_model(cfg: TrainConfig, ds: HrmDataset, say: Any = None) -> torch.nn.Module:
    """The preset (with `[model]` overrides) or `--init-from` checkpoint, sized to the dataset, in `--dtype`.

    `--init-from` takes the checkpoint's model config: a `[model]` table may only restate it (as RUN/config.toml
    does, so `--resume` and `--config RUN/config.toml` work for such runs), a field that differs is refused.
    A checkpoint's canvas follows the dataset where no weight depends on it (RoPE or no position encoding,
    attention): the references take seq_len from their dataset. `say(line)` reports such adjustments.
    """
    meta = ds.metadata
    canvas = int(round(math.sqrt(meta.seq_len)))
    if canvas * canvas != meta.seq_len:
        raise HrmEdgeError(f"dataset seq_len {meta.seq_len} is not a square canvas", path=ds.root)
    if "forward_dtype" in cfg.model and cfg.model["forward_dtype"] != cfg.dtype:
        raise HrmEdgeError(f"[model] forward_dtype {cfg.model['forward_dtype']!r} differs from --dtype {cfg.dtype}; "
                           "set the forward dtype with --dtype (dtype = ... in a config file)")
    if cfg.init_from:
        ck = load_checkpoint(cfg.init_from)
        mcfg, model = ck.config, ck.model
        trained = ck.meta.get("trained_dtype", "float32")
        if say is not None and trained != cfg.dtype:
            say(f"note: {cfg.init_from} was trained in {trained}; this run computes in {cfg.dtype} (--dtype)")
    else:
        mcfg = preset(cfg.preset or "")
        names = {f for f in asdict(mcfg)}
        unknown = sorted(set(cfg.model) - names)
        if unknown:
            raise HrmEdgeError(f"[model] has fields {', '.join(unknown)} that a {mcfg.family} config lacks")
        for k, v in cfg.model.items():
            setattr(mcfg, k, v)
        model = None
    if not isinstance(mcfg, (ActV1Config, TrmConfig)):
        raise HrmEdgeError(f"training the {mcfg.family} family is not implemented yet; use an act-v1 or trm preset "
                           "(tiny, hrm-6m, hrm-27m, tiny-trm, trm-7m)")
    if mcfg.vocab_size != meta.vocab_size:
        raise HrmEdgeError(f"model vocab {mcfg.vocab_size} != dataset vocab {meta.vocab_size}", path=ds.root)
    if model is None:
        mcfg.canvas = canvas
        mcfg.num_puzzle_identifiers = meta.num_puzzle_identifiers
        mcfg.forward_dtype = cfg.dtype
        return build_model(mcfg, seed=cfg.seed)
    if mcfg.canvas != canvas:
        if mcfg.pos_encodings == "learned" or getattr(mcfg, "mlp_t", False):
            raise HrmEdgeError(f"checkpoint canvas {mcfg.canvas} != dataset canvas {canvas} (its "
                               f"{'learned positions' if mcfg.pos_encodings == 'learned' else 'mlp_t'} are sized "
                               "by the sequence)", path=ds.root)
        if say is not None:
            say(f"note: {cfg.init_from}: canvas {mcfg.canvas} -> the dataset's {canvas} (no weight depends on it)")
        state = model.state_dict()
        mcfg.canvas = canvas
        model = build_model(mcfg)
        model.load_state_dict(state)
    grow_puzzle_table(model, meta.num_puzzle_identifiers)
    model.set_forward_dtype(cfg.dtype)
    have = asdict(mcfg)
    unknown = sorted(set(cfg.model) - set(have))
    differ = {k: v for k, v in cfg.model.items() if k in have and have[k] != v}
    if unknown or differ:
        what = ", ".join([f"{k} (no such {mcfg.family} field)" for k in unknown] +
                         [f"{k} = {v!r} (the checkpoint's is {have[k]!r})" for k, v in differ.items()])
        raise HrmEdgeError(f"--init-from takes the checkpoint's model config; [model] may only restate it: {what}")
    return model


def grow_puzzle_table(model: Any, rows: int) -> None:
    """New puzzle identifiers start at the mean of the trained rows (a table never shrinks).

    The trained rows are 1.. (row 0, the blank puzzle, is never drawn). TRM follows its reference's
    `load_checkpoint` instead (TinyRecursiveModels pretrain.py: `torch.mean(puzzle_emb, dim=0)` over ALL
    rows, the blank one included): a table of another shape is replaced, every row at that mean (a new
    dataset's identifiers are not assumed to line up with the old ones).
    """
    if model.config.puzzle_emb_ndim == 0:
        return
    w = model.puzzle_emb.weights
    have = w.shape[0]
    if rows == have:
        return
    if model.config.family == "trm":
        model.puzzle_emb.weights = torch.nn.Parameter(w.data.mean(0, keepdim=True).expand(rows, -1).clone())
        model.config.num_puzzle_identifiers = rows
        return
    mean = w.data[1:].mean(0, keepdim=True) if have > 1 else torch.zeros_like(w.data[:1])
    if rows < have:
        raise HrmEdgeError(f"the dataset has {rows} puzzle identifiers, fewer than the checkpoint's {have}")
    else:
        model.puzzle_emb.weights = torch.nn.Parameter(torch.cat([w.data, mean.expand(rows - have, -1)]))
    model.config.num_puzzle_identifiers = rows
