"""Which int8 settings keep the answers: grid agreement of int8 graphs with the fp32 graph.

    PYTHONPATH=. python benchmarks/qdq_agreement.py hrm-6m lite-5.7m [--puzzles 3] [--calib 2] [--out FILE]
    PYTHONPATH=. python benchmarks/qdq_agreement.py --ckpt hrm_edge/assets/demo/model.pt [--variants A,B] [--out FILE]

Presets (random weights, seed 0): the fp32 step graph is run over every ACT segment on augmented
ARC evaluation test inputs; each int8 variant then runs *the same fp32 carry* at every segment
(teacher forcing), so the agreement of segment k measures that segment's rounding, not the drift of
a chaotic recurrence. Calibration uses arc-agi-1/training puzzles (as `export --calib`).

`--ckpt` (a trained checkpoint; the shipped demo model by default of `--asset`): the inputs are
exactly `hrm-edge demo`'s, i.e. the demo asset's selected tasks, their held-out test inputs under the
demo's augmentations (AUGMENT per input, identity first, then the augmentations the puzzle table
knows), each with its learned puzzle vector, in the demo's batches. Calibration is the demo's too:
the tasks' demonstration pairs only (calib.json, never the held-out test inputs), 16 augmented puzzles
x every segment unless a variant says otherwise. Two measurements per variant, both in ONNX Runtime
through the toolkit's OrtRunner (the uint8-activation and fused-kernel rewrites `solve` applies):
- end to end: the whole ACT loop (halt max) of the variant against the fp32 graph's: % puzzles whose
  argmax tokens are all identical, % cells; and % decoded grids equal to PyTorch's (the demo's column);
- teacher forced: per segment, the variant fed the fp32 carry: % grids and cells identical.

Variant names: `dynamic` (`--precision int8`), `fp16` (a non-int8 yardstick; the ORT runner runs fp16
bundles as written, without its fp32 fused kernels), and
`qdq-{pc|pt}-{keep-attn+heads|keep-attn|keep-heads|none}` (per-channel / per-tensor weights; the matmul
groups kept fp32) followed by any of `-pct<P>` / `-entropy` (calibration method, MinMax otherwise),
`-calib4x` (4x the calibration puzzles), `-calib-spread` (--ckpt: one demonstration pair of *every*
task x 4 augmentations), `-only-<families>` (quantize only those weight-matmul families, joined by `+`:
qkv_proj, o_proj, gate_up_proj, down_proj) or `-allbut-<families>` (every weight matmul but those), and
the diagnostics `-wonly` (the activation Q/DQ pairs removed: int8 weights, fp32 activations) or `-aonly`
(the weights' DequantizeLinear replaced by the fp32 weights: int8 activations only). The diagnostics are
fake-quantized graphs that ORT runs in fp32, not deployable formats; they split the loss between
weight and activation rounding.

Entropy: ONNX Runtime's quantize_static does not forward the histogram size, and its Entropy default
(128 bins for 128 quantized bins) has a single candidate threshold, the MinMax one. The script runs
Entropy with 2048 bins (TensorRT's KL setting) by giving ORT's calibrator factory that default.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

PRESET_VARIANTS = ("dynamic", "qdq-pt-keep-attn+heads", "qdq-pc-keep-attn+heads", "qdq-pc-keep-heads",
                   "qdq-pc-keep-attn", "qdq-pc-none")
FAMILIES = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
DEFAULT_QDQ = "qdq-pc-keep-attn+heads"  # the export's QdqOptions defaults
CKPT_VARIANTS = (("fp16", "dynamic") + PRESET_VARIANTS[1:]
                 + tuple(f"{DEFAULT_QDQ}-{s}" for s in ("pct99.99", "pct99.999", "entropy", "calib4x", "calib-spread",
                                                        "pct99.99-calib-spread"))
                 + tuple(f"{DEFAULT_QDQ}-only-{f}" for f in FAMILIES)
                 + tuple(f"{DEFAULT_QDQ}-allbut-{f}" for f in FAMILIES)
                 + tuple(f"{DEFAULT_QDQ}-{s}" for s in ("only-qkv_proj+gate_up_proj",
                                                        "only-qkv_proj+gate_up_proj-pct99.99-calib-spread",
                                                        "only-gate_up_proj-pct99.99-calib-spread", "wonly", "aonly"))
                 + ("qdq-pc-none-wonly",))
_KEEP = {"keep-attn+heads": ("attention", "heads"), "keep-attn": ("attention",), "keep-heads": ("heads",),
         "none": ()}
_NAME = re.compile(r"^qdq-(pc|pt)-(keep-attn\+heads|keep-attn|keep-heads|none)(.*)$")
_MOD = re.compile(r"-(pct[0-9.]+|entropy|calib4x|calib-spread|only-[a-z_+]+|allbut-[a-z_+]+|wonly|aonly)")


def parse_variant(name: str) -> dict[str, Any]:
    """A variant name -> its settings (see the module docstring)."""
    if name in ("dynamic", "fp16"):
        return {"kind": name}
    m = _NAME.match(name)
    mods = _MOD.findall(m.group(3)) if m else []
    if m is None or "".join("-" + x for x in mods) != m.group(3):
        raise SystemExit(f"unknown variant {name!r}")
    v: dict[str, Any] = {"kind": "qdq", "per_channel": m.group(1) == "pc", "keep": _KEEP[m.group(2)],
                         "method": "minmax", "percentile": None, "calib": "default", "only": None, "allbut": None,
                         "strip": None}
    for x in mods:
        if x.startswith("pct"):
            v["method"], v["percentile"] = "percentile", float(x[3:])
        elif x == "entropy":
            v["method"] = "entropy"
        elif x.startswith("calib"):
            v["calib"] = x[len("calib"):].lstrip("-")
        elif x in ("wonly", "aonly"):
            v["strip"] = {"wonly": "activations", "aonly": "weights"}[x]
        else:
            key, fams = x.split("-", 1)
            bad = [f for f in fams.split("+") if f not in FAMILIES]
            if bad:
                raise SystemExit(f"unknown weight-matmul family {bad[0]!r} in {name!r} (one of {', '.join(FAMILIES)})")
            v[key] = tuple(fams.split("+"))
    return v


def weight_families(graph: Any, groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """The `weights` matmuls of `matmul_groups` by layer family: node name, else the weight's shape."""
    fams = {f: [n for n in groups["weights"] if f"/{f}/" in n or n.endswith(f"/{f}")] for f in FAMILIES}
    if all(fams.values()) and sum(map(len, fams.values())) == len(groups["weights"]):
        return fams
    # names lost: the shapes of ACT v1's Linears (d x 3d, d x d, d x 2i, i x d) tell them apart
    dims = {t.name: tuple(t.dims) for t in graph.initializer}
    by_node = {n.name: next((dims[i] for i in n.input[:2] if i in dims), None) for n in graph.node}
    shapes = {s for s in (by_node[n] for n in groups["weights"]) if s}
    d = min(min(s) for s in shapes)
    inter = max(max(s) for s in shapes if d * 3 not in s) // 2
    want = {"qkv_proj": (d, 3 * d), "o_proj": (d, d), "gate_up_proj": (d, 2 * inter), "down_proj": (inter, d)}
    return {f: [n for n in groups["weights"] if by_node[n] == want[f]] for f in FAMILIES}


def matmul_flops(model: Any, cfg: Any) -> dict[str, int]:
    """FLOPs (2 M K N) of every MatMul / Gemm for one puzzle, as bench/flops.py counts them: a Linear's MatMul
    over every carry position, a Gemm (q_head) over one, attention's products over every pair of positions."""
    dims = {t.name: tuple(t.dims) for t in model.graph.initializer}
    s = cfg.seq_len + cfg.puzzle_emb_len
    out = {}
    for n in model.graph.node:
        if n.op_type not in ("MatMul", "Gemm"):
            continue
        w = next((dims[i] for i in n.input[:2] if i in dims), None)
        if w is None:  # Q K^T or P V, summed over heads
            out[n.name] = 2 * s * s * cfg.hidden_size
        else:
            out[n.name] = 2 * (1 if n.op_type == "Gemm" else s) * math.prod(w)
    return out


@contextlib.contextmanager
def _entropy_bins(bins: int) -> Iterator[None]:
    """ORT's calibrator factory with `bins` histogram bins for Entropy (quantize_static cannot pass them)."""
    import importlib

    quantize = importlib.import_module("onnxruntime.quantization.quantize")  # the module, not the function
    calibrate = importlib.import_module("onnxruntime.quantization.calibrate")
    orig = quantize.create_calibrator

    def create(*args: Any, **kw: Any) -> Any:
        if kw.get("calibrate_method") == calibrate.CalibrationMethod.Entropy:
            kw["extra_options"] = {"num_bins": bins, **(kw.get("extra_options") or {})}
        return orig(*args, **kw)

    quantize.create_calibrator = create
    try:
        yield
    finally:
        quantize.create_calibrator = orig


def strip_qdq(model: Any, what: str, fp32: Any) -> int:
    """Diagnostics, in place: drop the activation Q -> DQ pairs (`activations`), or feed the matmuls the
    fp32 weights of `fp32` instead of their DequantizeLinear (`weights`). Returns how many were removed."""
    from onnx import numpy_helper

    g = model.graph
    inits = {t.name for t in g.initializer}
    outputs = {o.name for o in g.output}
    producer = {o: n for n in g.node for o in n.output}
    originals = {t.name: t for t in fp32.graph.initializer}
    rename: dict[str, str] = {}
    drop: set[int] = set()
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        src = n.input[0]
        if what == "activations" and src not in inits:
            q = producer.get(src)
            if q is not None and q.op_type == "QuantizeLinear":
                if n.output[0] in outputs:  # a graph output (z_H_next feeds lm_head): keep its name
                    n.op_type, n.domain = "Identity", ""
                    n.input[:] = [q.input[0]]
                    del n.attribute[:]
                else:
                    rename[n.output[0]] = q.input[0]
                    drop.add(id(n))
        elif what == "weights" and src in inits:
            base = src[: -len("_quantized")] if src.endswith("_quantized") else src
            if base not in originals:
                raise SystemExit(f"no fp32 weight {base!r} for {src!r}")
            if base not in inits:
                g.initializer.append(numpy_helper.from_array(numpy_helper.to_array(originals[base]), base))
                inits.add(base)
            rename[n.output[0]] = base
            drop.add(id(n))
    keep = [n for n in g.node if id(n) not in drop]
    for n in keep:
        n.input[:] = [rename.get(x, x) for x in n.input]
    used = {x for n in keep for x in n.input}
    keep = [n for n in keep if n.op_type != "QuantizeLinear" or any(o in used for o in n.output)]
    del g.node[:]
    g.node.extend(keep)
    return len(drop)


def build_variant(g: Any, v: dict[str, Any], calib: list[dict[str, np.ndarray]] | None,
                  fams: dict[str, list[str]]) -> tuple[Any, str, list[str]]:
    """The variant's segment graph (toposorted, as export_onnx leaves it), its precision, and its fp32-kept
    weight matmuls beyond the `keep` groups."""
    import onnx

    from hrm_edge.export.assemble import toposort
    from hrm_edge.export.precision import to_fp16, to_int8, to_int8_qdq

    src = onnx.ModelProto()
    src.CopyFrom(g)
    extra: list[str] = []
    if v["kind"] == "dynamic":
        q, precision = to_int8(src), "int8"
    elif v["kind"] == "fp16":
        q, precision = to_fp16(src), "fp16"
    else:
        if v["only"]:
            extra = [n for f in FAMILIES if f not in v["only"] for n in fams[f]]
        elif v["allbut"]:
            extra = [n for f in v["allbut"] for n in fams[f]]
        with _entropy_bins(2048):
            q = to_int8_qdq(src, calib, per_channel=v["per_channel"], keep_fp32=v["keep"],
                            calibrate_method=v["method"], percentile=v["percentile"], exclude_nodes=tuple(extra))
        if v["strip"]:
            strip_qdq(q, v["strip"], g)
        precision = "int8-qdq"
    toposort(q.graph)
    return q, precision, extra


def quantized_share(v: dict[str, Any], groups: dict[str, list[str]], extra: list[str],
                    flops: dict[str, int]) -> dict[str, Any]:
    """Which matmuls run int8, and their share of the weight-matmul FLOPs (layers + heads) and of all matmul FLOPs."""
    weights = set(groups["weights"]) | set(groups["heads"])
    every = weights | set(groups["attention"])
    if v["kind"] == "fp16":
        quant: set[str] = set()
    elif v["kind"] == "dynamic":
        quant = set(weights)  # quantize_dynamic with MatMulConstBOnly: every matmul with a constant operand
    else:
        quant = every - {n for k in v["keep"] for n in groups[k]} - set(extra)
        if v.get("strip"):  # fake-quant diagnostics: only one operand side is rounded
            return {"matmuls_int8": len(quant), "matmuls": len(every), "weight_flops_int8_pct": None,
                    "all_matmul_flops_int8_pct": None, "note": f"diagnostic: {v['strip']} left fp32"}

    def share(names: set[str], of: set[str]) -> float | None:
        tot = sum(flops.get(n, 0) for n in of)
        return round(100 * sum(flops.get(n, 0) for n in names & of) / tot, 2) if tot else None

    return {"matmuls_int8": len(quant), "matmuls": len(every), "weight_flops_int8_pct": share(quant, weights),
            "all_matmul_flops_int8_pct": share(quant, every)}


# --------------------------------------------------------------------------------------------------
# presets: random weights, teacher-forced only (the study of 2026-11-25 on lite-5.7m / hrm-6m)
# --------------------------------------------------------------------------------------------------
def preset_study(a: argparse.Namespace) -> dict[str, Any]:
    import onnxruntime as ort

    from hrm_edge.config import preset
    from hrm_edge.export.calib import calibration_puzzles, segment_feeds
    from hrm_edge.export.onnx import ExportOptions, export_onnx
    from hrm_edge.export.precision import matmul_groups
    from hrm_edge.model import build_model
    from hrm_edge.runtime.onnxruntime import session_options

    out: dict[str, Any] = {"puzzles": a.puzzles, "calib_puzzles": a.calib, "results": {}}
    calibs: dict[tuple[str, str], list[dict[str, np.ndarray]]] = {}

    def calib_set(name: str, kind: str, model: Any, g: Any) -> list[dict[str, np.ndarray]]:
        if (name, kind) not in calibs:
            if kind not in ("default", "4x"):
                raise SystemExit(f"calibration {kind!r} needs --ckpt")
            n = a.calib * (4 if kind == "4x" else 1)
            ctok, cpe = calibration_puzzles("arc-agi-1/training", model, n, augment=2)
            calibs[name, kind] = list(segment_feeds(g, ctok, cpe, model.config.max_steps, threads=a.threads))
        return calibs[name, kind]

    for name in a.presets:
        model = build_model(preset(name), seed=0).eval()
        g = export_onnx(model, ExportOptions()).model
        groups = matmul_groups(g.graph)
        fams = weight_families(g.graph, groups)
        segs = model.config.max_steps

        etok, epe = calibration_puzzles("arc-agi-1/evaluation", model, a.puzzles, augment=3, seed=1)
        feeds = list(segment_feeds(g, etok, epe, segs, batch=a.puzzles, threads=a.threads))
        s32 = ort.InferenceSession(g.SerializeToString(), session_options(a.threads),
                                   providers=["CPUExecutionProvider"])
        ref = [s32.run(["logits"], f)[0].argmax(-1) for f in feeds]
        res = {}
        for vname in (a.variants.split(",") if a.variants else PRESET_VARIANTS):
            v = parse_variant(vname)
            q, _, _ = build_variant(g, v, calib_set(name, v["calib"], model, g) if v["kind"] == "qdq" else None, fams)
            s = ort.InferenceSession(q.SerializeToString(), session_options(a.threads),
                                     providers=["CPUExecutionProvider"])
            got = [s.run(["logits"], f)[0].argmax(-1) for f in feeds]
            res[vname] = {"cells_pct": [round(100 * float((x == y).mean()), 2) for x, y in zip(got, ref)],
                          "grids_pct": [round(100 * float((x == y).all(-1).mean()), 1) for x, y in zip(got, ref)]}
            print(name, vname, json.dumps(res[vname]), flush=True)
        out["results"][name] = res
    return out


# --------------------------------------------------------------------------------------------------
# a trained checkpoint on the demo's inputs
# --------------------------------------------------------------------------------------------------
def _runner(graph: Any, exported: Any, cfg: Any, precision: str, folder: Path, threads: int,
            fusions: bool = True) -> Any:
    """An OrtRunner over `graph` written as a minimal bundle (model.onnx + manifest; puzzle vectors are fed)."""
    import dataclasses

    from hrm_edge.config import config_to_dict
    from hrm_edge.export import bundle as bd
    from hrm_edge.runtime.onnxruntime import OrtRunner

    folder.mkdir(parents=True, exist_ok=True)
    info = bd.save_model(graph, folder)
    manifest = bd.build_manifest(graph=dataclasses.replace(exported, model=graph), onnx_info=info,
                                 config=config_to_dict(cfg), precision=precision,
                                 source={"kind": "benchmarks/qdq_agreement.py"}, puzzle=None, target="ort", lint={},
                                 ops={}, export_seconds=0.0)
    bd.write_manifest(folder, manifest)
    runner = OrtRunner.from_bundle(folder, providers="cpu", threads=threads)
    runner.fusions = fusions
    return runner


def _agree(got: list[np.ndarray], ref: list[np.ndarray]) -> tuple[float, float]:
    x, y = np.concatenate(got), np.concatenate(ref)
    return round(100 * float((x == y).all(-1).mean()), 2), round(100 * float((x == y).mean()), 3)


def ckpt_study(a: argparse.Namespace) -> dict[str, Any]:
    import torch

    from hrm_edge.data.identifiers import names_by_row, read_identifiers
    from hrm_edge.demo.asset import load_asset, select_tasks
    from hrm_edge.demo.run import AUGMENT, BATCH, HALT, _write_tasks
    from hrm_edge.export import DEFAULT_CALIB_SOURCE, QdqOptions
    from hrm_edge.export.calib import calibration_puzzles, segment_feeds
    from hrm_edge.export.onnx import ExportOptions, export_onnx
    from hrm_edge.export.precision import matmul_groups
    from hrm_edge.model.checkpoint import load_checkpoint
    from hrm_edge.runtime.batches import run_batches
    from hrm_edge.solve.compare import run_plan
    from hrm_edge.solve.runners import open_runtime
    from hrm_edge.solve.solver import SolveOptions, decide, make_batches, plan_tasks
    from hrm_edge.solve.vote import grid_key

    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    asset = load_asset(a.asset) if a.asset else load_asset()
    tasks = select_tasks(asset)
    ident = Path(a.identifiers) if a.identifiers else Path(a.ckpt).parent / "identifiers.json"
    names = names_by_row(read_identifiers(ident))
    model = load_checkpoint(a.ckpt).model.eval()
    cfg = model.config
    segs = cfg.max_steps

    # the demo's plan: its augmentations, puzzle vectors and batches, planned from the checkpoint's table
    ref = open_runtime("torch", a.ckpt, device="cpu", identifiers=ident, threads=a.threads)
    opts = SolveOptions(augment=AUGMENT, attempts=2, halt=HALT, batch=BATCH, seed=0)
    plan = plan_tasks(tasks, opts, cfg.canvas, ref.puzzles)
    bset = make_batches(plan, ref.puzzles)
    order = [i for b in plan.batches for i in b]
    torch_rec, torch_dec, blank = run_plan(ref, plan, HALT, None, warmup=False)
    torch_pred = np.concatenate(torch_rec.predictions)
    print(f"{len(tasks)} tasks, {plan.n_test_inputs} test inputs x {AUGMENT} = {len(plan.jobs)} puzzles "
          f"({blank} with the blank identifier); torch done {time.perf_counter() - t_start:.0f} s", flush=True)

    exported = export_onnx(model, ExportOptions())
    g = exported.model
    groups = matmul_groups(g.graph)  # names the nodes; every copy below keeps these names
    fams = weight_families(g.graph, groups)
    flops = matmul_flops(g, cfg)
    tokens = np.concatenate([b.tokens for b in bset.batches])
    pe = np.concatenate([b.puzzle_emb for b in bset.batches]) if bset.uses_puzzle_emb else None
    tf_feeds = list(segment_feeds(g, tokens, pe, segs, batch=BATCH, threads=a.threads))

    # calibration: the demo's calib.json (each task's demonstration pairs stand as its tests)
    tmp = Path(tempfile.mkdtemp(prefix="qdq-agreement-"))
    _write_tasks(tmp / "calib.json", tasks, demonstrations_as_tests=True)
    from hrm_edge.data.arc import ArcTask

    spread = [ArcTask(t.id, t.train, t.train[:1], t.source, t.split) for t in tasks]
    _write_tasks(tmp / "calib-spread.json", spread)
    q0 = QdqOptions()
    calib_sets = {"default": (tmp / "calib.json", q0.puzzles, q0.augment),
                  "4x": (tmp / "calib.json", 4 * q0.puzzles, q0.augment),
                  "spread": (tmp / "calib-spread.json", len(spread) * q0.augment, q0.augment)}
    calibs: dict[str, list[dict[str, np.ndarray]]] = {}
    calib_info: dict[str, Any] = {}

    def calib_set(kind: str) -> list[dict[str, np.ndarray]]:
        if kind not in calibs:
            path, n, aug = calib_sets[kind]
            ctok, cpe = calibration_puzzles(str(path), model, n, augment=aug, identifiers=names)
            calibs[kind] = list(segment_feeds(g, ctok, cpe, segs, threads=a.threads))
            from hrm_edge.data.arc import load_sources
            from hrm_edge.solve.solver import plan_tasks as plan_calib

            src = load_sources([str(path)], canvas=cfg.canvas).tasks
            jobs = plan_calib(src, SolveOptions(augment=aug, seed=0), cfg.canvas).jobs[:n]
            calib_info[kind] = {"source": "demonstration pairs" + (" (first of each task)" if kind == "spread"
                                                                   else " of the selected tasks"),
                                "puzzles": int(ctok.shape[0]), "augment": aug, "segments": segs,
                                "tasks_covered": len({j.task_id for j in jobs})}
        return calibs[kind]

    out: dict[str, Any] = {
        **a.head,
        "model": {"checkpoint": str(a.ckpt), "family": cfg.family, "hidden": cfg.hidden_size,
                  "heads": cfg.num_heads, "canvas": cfg.canvas, "segments": segs},
        "inputs": {"tasks": len(tasks), "test_inputs": plan.n_test_inputs, "augment": AUGMENT, "batch": BATCH,
                   "puzzles": len(plan.jobs), "blank_identifiers": blank, "halt": HALT,
                   "rule": "hrm-edge demo's selection, plan and batches (held-out test inputs only)"},
        "calibration": calib_info, "calibration_default_source_of_export": DEFAULT_CALIB_SOURCE,
        "matmul_groups": {k: len(v) for k, v in groups.items()},
        "weight_families": {f: len(v) for f, v in fams.items()},
        "weight_flops_share_pct": {f: round(100 * sum(flops.get(n, 0) for n in v)
                                            / max(1, sum(flops.get(n, 0) for n in groups["weights"] + groups["heads"])),
                                            2) for f, v in {**fams, "heads": groups["heads"]}.items()},
        "reference": {}, "results": {},
    }

    def run_e2e(runner: Any) -> tuple[Any, list[np.ndarray]]:
        with runner:
            rec = run_batches(runner, bset.batches, HALT, warmup=False)
            tf = [runner.infer(f)["logits"].argmax(-1) for f in tf_feeds]
        return rec, tf

    def vs_torch(rec: Any) -> float:
        dec = decide(plan, rec)
        same = sum((x is None and y is None) or (x is not None and y is not None and grid_key(x) == grid_key(y))
                   for x, y in ((dec.per_job_grid[j], torch_dec.per_job_grid[j]) for j in order))
        return round(100 * same / len(order), 2)

    t = time.perf_counter()
    r32 = _runner(g, exported, cfg, "fp32", tmp / "fp32", a.threads)
    rec32, tf32 = run_e2e(r32)
    pred32 = np.concatenate(rec32.predictions)
    grids, cells = _agree([pred32], [torch_pred])
    out["reference"] = {"ort_fp32_vs_torch": {"grids_pct": grids, "cells_pct": cells,
                                              "decoded_grids_eq_torch_pct": vs_torch(rec32)},
                        "seconds": round(time.perf_counter() - t, 1)}
    print("ort-fp32 vs torch", json.dumps(out["reference"]), flush=True)

    def save() -> None:
        out["seconds"] = round(time.perf_counter() - t_start, 1)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")

    for vname in (a.variants.split(",") if a.variants else CKPT_VARIANTS):
        v = parse_variant(vname)
        t = time.perf_counter()
        try:
            q, precision, extra = build_variant(g, v, calib_set(v["calib"]) if v["kind"] == "qdq" else None, fams)
            t_q = time.perf_counter() - t
            rec, tf = run_e2e(_runner(q, exported, cfg, precision, tmp / vname, a.threads,
                                      fusions=precision != "fp16"))
        except Exception as exc:  # noqa: BLE001 - one variant failing is a row, not the end of the study
            out["results"][vname] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            print(vname, out["results"][vname], flush=True)
            save()
            continue
        pred = np.concatenate(rec.predictions)
        grids, cells = _agree([pred], [pred32])
        tfg, tfc = zip(*(_agree(tf[k::segs], tf32[k::segs]) for k in range(segs)))
        out["results"][vname] = {
            "settings": {k: (list(x) if isinstance(x, tuple) else x) for k, x in v.items()},
            "end_to_end": {"grids_pct": grids, "cells_pct": cells, "decoded_grids_eq_torch_pct": vs_torch(rec)},
            "teacher_forced": {"grids_pct": list(tfg), "cells_pct": list(tfc)},
            **quantized_share(v, groups, extra, flops),
            "quantize_seconds": round(t_q, 1), "seconds": round(time.perf_counter() - t, 1)}
        print(vname, json.dumps(out["results"][vname]), flush=True)
        save()
    out["calibration"] = calib_info
    save()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("presets", nargs="*", help="random-weight presets (teacher-forced study)")
    ap.add_argument("--ckpt", help="a trained checkpoint: the demo's inputs, end to end and teacher forced")
    ap.add_argument("--asset", help="--ckpt: demo-model folder whose task selection gives the inputs "
                                    "(default: the shipped one)")
    ap.add_argument("--identifiers", help="--ckpt: identifiers.json (default: beside the checkpoint)")
    ap.add_argument("--puzzles", type=int, default=3)
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="", help="comma-separated variant names (default: the mode's list)")
    ap.add_argument("--out", default="qdq_agreement.json")
    a = ap.parse_args()
    if bool(a.presets) == bool(a.ckpt):
        ap.error("give presets or --ckpt (one of them)")
    import sys

    a.head = {"command": "PYTHONPATH=. python benchmarks/qdq_agreement.py " + " ".join(sys.argv[1:]),
              "time": time.strftime("%FT%T")}
    out = ckpt_study(a) if a.ckpt else {**a.head, **preset_study(a)}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
