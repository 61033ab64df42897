"""Which int8-qdq settings keep the answers: per-segment grid agreement with fp32, on random weights.

    PYTHONPATH=. python benchmarks/qdq_agreement.py hrm-6m lite-5.7m [--puzzles 3] [--calib 2] [--out FILE]

For each preset (random weights, seed 0) the fp32 step graph is run over every ACT segment on
augmented ARC evaluation test inputs; each int8 variant then runs *the same fp32 carry* at every
segment (teacher forcing), so the agreement of segment k measures that segment's rounding, not the
drift of a chaotic recurrence. Calibration uses arc-agi-1/training puzzles (as `export --calib`).
Variants: dynamic int8 (today's `--precision int8`), and QDQ per-tensor / per-channel weights with
attention and/or heads (lm_head, q_head) kept fp32 or quantized.
"""

from __future__ import annotations

import argparse
import json
import time

VARIANTS = {"dynamic": None, "qdq-pt-keep-attn+heads": (False, ("attention", "heads")),
            "qdq-pc-keep-attn+heads": (True, ("attention", "heads")), "qdq-pc-keep-heads": (True, ("heads",)),
            "qdq-pc-keep-attn": (True, ("attention",)), "qdq-pc-none": (True, ())}


def main() -> None:
    import onnxruntime as ort

    from hrm_edge.config import preset
    from hrm_edge.export.calib import calibration_puzzles, segment_feeds
    from hrm_edge.export.onnx import ExportOptions, export_onnx
    from hrm_edge.export.precision import to_int8, to_int8_qdq
    from hrm_edge.model import build_model
    from hrm_edge.runtime.onnxruntime import session_options

    ap = argparse.ArgumentParser()
    ap.add_argument("presets", nargs="+")
    ap.add_argument("--puzzles", type=int, default=3)
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default="qdq_agreement.json")
    a = ap.parse_args()
    out = {"command": "python benchmarks/qdq_agreement.py " + " ".join(a.presets), "time": time.strftime("%FT%T"),
           "puzzles": a.puzzles, "calib_puzzles": a.calib, "results": {}}
    for name in a.presets:
        model = build_model(preset(name), seed=0).eval()
        g = export_onnx(model, ExportOptions()).model
        segs = model.config.max_steps
        ctok, cpe = calibration_puzzles("arc-agi-1/training", model, a.calib, augment=2)
        calib = list(segment_feeds(g, ctok, cpe, segs, threads=a.threads))
        etok, epe = calibration_puzzles("arc-agi-1/evaluation", model, a.puzzles, augment=3, seed=1)
        feeds = list(segment_feeds(g, etok, epe, segs, batch=a.puzzles, threads=a.threads))
        s32 = ort.InferenceSession(g.SerializeToString(), session_options(a.threads),
                                   providers=["CPUExecutionProvider"])
        ref = [s32.run(["logits"], f)[0].argmax(-1) for f in feeds]
        res = {}
        for v in a.variants.split(","):
            opt = VARIANTS[v]
            q = to_int8(g) if opt is None else to_int8_qdq(g, calib, per_channel=opt[0], keep_fp32=opt[1])
            s = ort.InferenceSession(q.SerializeToString(), session_options(a.threads),
                                     providers=["CPUExecutionProvider"])
            got = [s.run(["logits"], f)[0].argmax(-1) for f in feeds]
            res[v] = {"cells_pct": [round(100 * float((x == y).mean()), 2) for x, y in zip(got, ref)],
                      "grids_pct": [round(100 * float((x == y).all(-1).mean()), 1) for x, y in zip(got, ref)]}
            print(name, v, json.dumps(res[v]), flush=True)
        out["results"][name] = res
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
