"""Where ONNX Runtime spends a segment: kernel time by op type (and the slowest MatMul shapes).

    PYTHONPATH=. python benchmarks/ort_profile.py hrm-6m --precision fp32 --batch 1 [--threads 2] [--keep-s8]
        [--qdq-fp32 attention,heads|none] [--no-fused-attention]

Exports the preset's step graph (random weights, seed 0; int8-qdq calibrated on 2 training puzzles),
runs one warm-up and one profiled segment with ORT's profiler, and prints the share of kernel time per
op type. Like the runner: int8-qdq activations run as u8 (unless --keep-s8), and attention, RoPE and
split projections as fused kernels (graph/ort_fusions.py; unless --no-fused-attention).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import tempfile

import numpy as np


def main() -> None:
    import onnxruntime as ort

    from hrm_edge.config import preset
    from hrm_edge.export.calib import calibration_puzzles, segment_feeds
    from hrm_edge.export.onnx import ExportOptions, export_onnx
    from hrm_edge.export.precision import to_int8, to_int8_qdq
    from hrm_edge.graph.ort_fusions import fuse_for_ort
    from hrm_edge.graph.qdq_uint8 import activations_to_uint8
    from hrm_edge.model import build_model
    from hrm_edge.runtime.onnxruntime import session_options

    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8", "int8-qdq"])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep-s8", action="store_true")
    ap.add_argument("--no-fused-attention", action="store_true", help="attention as exported (standard ops)")
    ap.add_argument("--qdq-fp32", default="attention,heads", help="matmul groups left fp32 (or none)")
    a = ap.parse_args()
    model = build_model(preset(a.preset), seed=0).eval()
    g = export_onnx(model, ExportOptions()).model
    if a.precision == "int8":
        g = to_int8(g)
    elif a.precision == "int8-qdq":
        tok, pe = calibration_puzzles("arc-agi-1/training", model, 2, augment=2)
        keep = tuple(k for k in a.qdq_fp32.split(",") if k and k != "none")
        g = to_int8_qdq(g, segment_feeds(g, tok, pe, model.config.max_steps), keep_fp32=keep)
        if not a.keep_s8:
            activations_to_uint8(g)
    if not a.no_fused_attention:
        print("ORT fusions:", fuse_for_ort(g, model.config.num_heads))
    with tempfile.TemporaryDirectory() as tmp:
        so = session_options(a.threads)
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "prof")
        s = ort.InferenceSession(g.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ins = {i.name: i for i in s.get_inputs()}
        rng = np.random.default_rng(0)
        c = model.config
        shape = (a.batch, c.seq_len + c.puzzle_emb_len, c.hidden_size)
        feed = {"tokens": rng.integers(2, 12, (a.batch, c.seq_len)).astype(np.int32),
                "z_H": rng.standard_normal(shape).astype(np.float32),
                "z_L": rng.standard_normal(shape).astype(np.float32), "halted": np.zeros(a.batch, bool)}
        if "puzzle_emb" in ins:
            feed["puzzle_emb"] = np.zeros((a.batch, c.puzzle_emb_ndim), np.float32)
        s.run(None, feed)
        s.run(None, feed)
        events = json.load(open(s.end_profiling()))
    runs = [e for e in events if e.get("name") == "model_run"]
    last = runs[-1]
    t0, t1 = last["ts"], last["ts"] + last["dur"]
    by_op: collections.Counter[str] = collections.Counter()
    by_shape: collections.Counter[tuple[str, str]] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and t0 <= e["ts"] <= t1:
            op = e["args"]["op_name"]
            by_op[op] += e["dur"]
            if "MatMul" in op:
                shapes = [list(d.values())[0] for d in e["args"].get("input_type_shape", [])]
                by_shape[(op, str([x for x in shapes if len(x) > 1][:2]))] += e["dur"]
    total = sum(by_op.values())
    print(f"{a.preset} {a.precision} batch {a.batch}, {a.threads} threads: segment {last['dur'] / 1000:.0f} ms "
          f"(kernels {total / 1000:.0f} ms)")
    for op, us in by_op.most_common(10):
        print(f"  {op:26s} {100 * us / total:5.1f}%  {us / 1000:8.1f} ms")
    print("  slowest matmul shapes:")
    for (op, shp), us in by_shape.most_common(6):
        print(f"    {op:16s} {shp:50s} {us / 1000:8.1f} ms")


if __name__ == "__main__":
    main()
