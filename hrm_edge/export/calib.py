"""Calibration data for static int8: real augmented ARC puzzles, run through the fp32 segment graph.

Static quantization fixes every activation's scale ahead of time, so the calibration inputs must
look like what the model sees in use: ARC test inputs under the solver's augmentations (dihedral,
colour permutation), each with its puzzle vector, *and* the carries of every ACT segment, since
the carry after segment 6 is not distributed like the zeros of segment 1. `segment_feeds` gets
those carries by running the fp32 graph itself over the segments, for any segment graph hrm-edge
exports: an output `X_next` feeds input `X` of the next call (`z_H`, `z_L` of the step graph, the
whole ACT state of the unrolled / loop body), `halted` restarts only the first segment and the
body's segment counter `n` counts up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import onnx

from hrm_edge.errors import HrmEdgeError

_NP = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.INT32: np.int32,
       onnx.TensorProto.INT64: np.int64, onnx.TensorProto.BOOL: np.bool_}


def calibration_puzzles(source: str, model: Any, n: int, augment: int = 4, seed: int = 0,
                        identifiers: list[str] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Tokens [n, seq] and puzzle vectors [n, ndim] (or None) of `n` augmented ARC test inputs from `source`.

    Augmentations are the solver's (`solve.solver.plan_tasks`: identity first, then seeded random
    dihedral x colour permutations); each puzzle takes its table row where `identifiers` names it,
    else the blank row 0, exactly as `solve` would feed it.
    """
    import torch

    from hrm_edge.data.arc import load_sources
    from hrm_edge.solve.solver import SolveOptions, plan_tasks

    cfg = model.config
    res = load_sources([source], canvas=cfg.canvas)
    if not res.tasks:
        raise HrmEdgeError("no usable ARC tasks for int8 calibration", source)
    opts = SolveOptions(augment=max(1, augment), seed=seed)
    jobs: list[Any] = []
    step = max(1, -(-n // opts.augment))
    for s in range(0, len(res.tasks), step):  # tasks in order until n puzzles fit the canvas
        jobs += plan_tasks(res.tasks[s:s + step], opts, cfg.canvas).jobs
        if len(jobs) >= n:
            break
    jobs = jobs[:n]
    if not jobs:
        raise HrmEdgeError("no ARC test inputs fit this model's canvas for int8 calibration", source)
    tokens = np.stack([j.tokens for j in jobs]).astype(np.int32)
    if cfg.puzzle_emb_ndim == 0:
        return tokens, None
    rows = {name: i for i, name in enumerate(identifiers or [])}
    ids = torch.as_tensor([rows.get(j.identifier, 0) for j in jobs], dtype=torch.long)
    with torch.no_grad():
        pe = model.puzzle_vectors(ids).float().cpu().numpy()
    return tokens, pe


def _zeros_like_input(vi: onnx.ValueInfoProto, batch: int) -> np.ndarray:
    t = vi.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else batch for d in t.shape.dim]
    if t.elem_type not in _NP:
        raise HrmEdgeError(f"calibration cannot build graph input {vi.name!r} (element type {t.elem_type})")
    return np.zeros(shape, _NP[t.elem_type])


def segment_feeds(model: onnx.ModelProto, tokens: np.ndarray, puzzle_emb: np.ndarray | None, segments: int,
                  batch: int = 1, threads: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Every segment's inputs for these puzzles, `batch` at a time, as the fp32 graph itself produces them."""
    import onnxruntime as ort

    from hrm_edge.runtime.onnxruntime import session_options

    sess = ort.InferenceSession(model.SerializeToString(), session_options(threads),
                                providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in model.graph.input}
    outputs = [o.name for o in sess.get_outputs()]
    for s in range(0, tokens.shape[0], batch):
        tok = tokens[s:s + batch]
        b = tok.shape[0]
        feed: dict[str, np.ndarray] = {}
        for name, vi in inputs.items():
            if name == "tokens":
                feed[name] = tok.astype(_NP[vi.type.tensor_type.elem_type])
            elif name == "puzzle_emb":
                if puzzle_emb is None:
                    raise HrmEdgeError("the graph takes puzzle vectors but the calibration has none")
                feed[name] = puzzle_emb[s:s + batch].astype(np.float32)
            elif name == "halted":
                feed[name] = np.ones(b, np.bool_)
            elif name == "n":
                feed[name] = np.array(1, np.int64)
            else:
                feed[name] = _zeros_like_input(vi, b)
        for _ in range(segments):
            yield dict(feed)
            out = dict(zip(outputs, sess.run(None, feed)))
            for name in inputs:
                if f"{name}_next" in out:
                    feed[name] = out[f"{name}_next"]
            if "halted" in feed:
                feed["halted"] = np.zeros(b, np.bool_)
            if "n" in feed:
                feed["n"] = feed["n"] + 1


__all__ = ["calibration_puzzles", "segment_feeds"]
