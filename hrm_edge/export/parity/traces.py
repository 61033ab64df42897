"""Recording what ONNX Runtime did, segment by segment: the feeds and outputs of every ACT segment of a run
(step bundles through the shared driver; unrolled / loop bundles through an instrumented copy of the graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MethodType
from typing import Any

import numpy as np
import onnx

from hrm_edge.errors import HrmEdgeError
from hrm_edge.runtime.base import ActResult, ModelSpec, Runner


@dataclass
class OrtTrace:
    result: ActResult
    feeds: list[dict[str, np.ndarray]]  # the step inputs of every segment run
    outputs: list[dict[str, np.ndarray]]  # what ORT returned per segment (all of it for step; carries otherwise)
    halt: str = "max"  # the halting rule the run used (result.steps follow it)


def record_step(runner: Runner, tokens: np.ndarray, pe: np.ndarray | None, halt: str) -> OrtTrace:
    """Run the shared driver on a step bundle, keeping every segment's feed and outputs."""
    feeds, outs = [], []
    plain = runner.infer

    def rec(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = plain(feed)
        feeds.append(dict(feed))
        outs.append(out)
        return out

    runner.infer = rec  # type: ignore[method-assign]
    # the base class's host carry path, so every segment goes through `infer` (not ORT's I/O binding)
    runner.step_session = MethodType(Runner.step_session, runner)  # type: ignore[method-assign]
    try:
        res = runner.run_act(tokens, pe, halt=halt)
    finally:
        del runner.infer
        del runner.step_session
    return OrtTrace(res, feeds, outs, halt)


def instrument(model: onnx.ModelProto, act: str, segments: int) -> onnx.ModelProto:
    """A copy of an unrolled / loop graph that also returns each segment's carry (no node changed)."""
    from onnx import helper

    from hrm_edge.export.assemble import STATE

    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    if act == "unrolled":
        produced = {o for n in g.node for o in n.output}
        for k in range(1, segments):
            for s in ("z_H", "z_L"):
                name = f"seg{k}/{s}_next"
                if name not in produced:
                    raise HrmEdgeError(f"cannot instrument the unrolled graph: {name} not found")
                g.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        return m
    loop = next(n for n in g.node if n.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    for s in ("z_H", "z_L"):
        src = body.output[1 + STATE.index(s)].name
        body.node.append(helper.make_node("Identity", [src], [f"seg/scan_{s}"], name=f"seg/scan_{s}"))
        body.output.append(helper.make_tensor_value_info(f"seg/scan_{s}", onnx.TensorProto.FLOAT, None))
        loop.output.append(f"scan/{s}")
        g.output.append(helper.make_tensor_value_info(f"scan/{s}", onnx.TensorProto.FLOAT, None))
    return m


def record_graph(runner: Any, inst_session: Any, tokens: np.ndarray, pe: np.ndarray | None,
                 spec: ModelSpec) -> OrtTrace:
    """Run an instrumented unrolled / loop graph; rebuild the per-segment step feeds from its carries."""
    feed = {"tokens": np.ascontiguousarray(tokens, np.int32)}
    if pe is not None:
        feed["puzzle_emb"] = np.ascontiguousarray(pe, np.float32)
    names = [o.name for o in inst_session.get_outputs()]
    out = dict(zip(names, inst_session.run(None, feed)))
    if "scan/z_H" in out:
        carries = [(out["scan/z_H"][i], out["scan/z_L"][i]) for i in range(out["scan/z_H"].shape[0])]
    else:
        carries = [(out[f"seg{k}/z_H_next"], out[f"seg{k}/z_L_next"]) for k in range(1, spec.max_steps)]
    b = tokens.shape[0]
    res = ActResult(out["logits"].astype(np.float32), out["q_halt"], out["q_continue"], out["steps"].astype(np.int32))
    z0 = np.zeros((b, spec.carry_len, spec.hidden_size), np.float32)
    feeds, outs = [], []
    for k in range(1, int(res.steps.max()) + 1):
        zh, zl = (z0, z0) if k == 1 else carries[k - 2]
        f = {**feed, "z_H": zh, "z_L": zl, "halted": np.full(b, k == 1)}
        feeds.append(f)
        outs.append({"z_H_next": carries[k - 1][0], "z_L_next": carries[k - 1][1]} if k - 1 < len(carries) else {})
    return OrtTrace(res, feeds, outs, runner.baked_halt)
