"""The export pipeline: checkpoint or model -> parity-checked bundle (model.onnx + puzzle_emb.npy + manifest.json).

    from hrm_edge.export import export_checkpoint, verify_bundle
    result = export_checkpoint("hrm_arc_best.pt", act="step")     # raises ParityError, writes nothing, on failure
    result.path, result.manifest["parity"]
    report = verify_bundle(result.path)                             # re-run the ladder on demand

`export_model` does the same from a model object. The steps: onnx.py traces and assembles the
graph for the ACT mode, precision.py makes fp16 / int8 variants, bundle.py stages the folder,
parity/ runs L1..L4 against the PyTorch model, and only then is the folder renamed into place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hrm_edge.data.identifiers import names_by_row, parse_identifiers, read_identifiers
from hrm_edge.errors import HrmEdgeError

DEFAULT_L3_BATCHES = (1, 3)
DEFAULT_L4_PUZZLES = 4


@dataclass
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    report: Any  # parity.ParityReport
    export_seconds: float
    total_seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


def default_target(precision: str, opset: int = 17) -> str:
    """Dynamic int8 is an ONNX Runtime CPU format; fp32/fp16 and int8-qdq (standard Q/DQ, which TensorRT
    builds as an explicitly quantized engine) default to the strictest TensorRT that parses the opset: 8.5
    (JetPack 5) up to opset 17, 10.x above (an int8-qdq fp16 body needs opset 19)."""
    if precision == "int8":
        return "ort"
    return "trt-8.5" if opset <= 17 else "trt-10"


DEFAULT_CALIB_SOURCE = "arc-agi-1/training"  # shipped offline; L4 checks on arc-agi-1/evaluation
DEFAULT_CALIB_PUZZLES = 16


@dataclass
class QdqOptions:
    """Static int8 (int8-qdq) settings: calibration puzzles and what stays fp32 (export/precision.py)."""

    calib: str = DEFAULT_CALIB_SOURCE  # ARC tasks: their test inputs, augmented, are the calibration set
    puzzles: int = DEFAULT_CALIB_PUZZLES  # augmented puzzles, each run over every ACT segment
    augment: int = 4  # augmentations per test input (identity first, as `solve`)
    per_channel: bool = True
    # attention and heads: fp32 costs no speed (attention in int8 was slower in ORT) and keeps answers; down and
    # o_proj (inputs not normalised): on the trained demo model keeping them fp32 took grids = fp32 from 44% to 76%
    # (decoded = torch 71% -> 89%) for 4-11% of int8 speed on hrm-6m (benchmarks/README.md, "Static int8")
    keep_fp32: tuple[str, ...] = ("attention", "heads", "down", "o_proj")


def _qdq_transform(model: Any, qdq: QdqOptions, identifiers: list[str] | None,
                   log: Callable[[str], None] | None) -> Any:
    """The int8-qdq transform: calibration feeds from real augmented puzzles through the fp32 segment graph."""
    from hrm_edge.export.calib import calibration_puzzles, segment_feeds
    from hrm_edge.export.precision import transform_for

    if qdq.puzzles < 1:
        raise HrmEdgeError(f"--calib-puzzles must be >= 1, got {qdq.puzzles}")
    tokens, pe = calibration_puzzles(qdq.calib, model, qdq.puzzles, augment=qdq.augment, identifiers=identifiers)
    segments = model.config.max_steps

    def feeds(graph: Any) -> Any:
        if log:
            log(f"calibrating int8 on {tokens.shape[0]} augmented puzzles from {qdq.calib} x {segments} segments")
        return segment_feeds(graph, tokens, pe, segments)

    return transform_for("int8-qdq", feeds, per_channel=qdq.per_channel, keep_fp32=qdq.keep_fp32)


def default_out(ckpt: Path, act: str, precision: str) -> Path:
    return ckpt.parent / f"{ckpt.stem}-{act}{'' if precision == 'fp32' else '-' + precision}"


def precision_report(report: Any, size: int) -> dict[str, Any]:
    """fp16 / int8: how far the variant lies from fp32 PyTorch (measured by L3 / L4, not gated)."""
    levels = {lv.level: lv for lv in report.levels}
    out: dict[str, Any] = {"compared_with": "fp32 PyTorch (same checkpoint)", "bytes": size}
    if "L3" in levels:
        out["l3_max_abs"] = levels["L3"].details.get("max_abs", {})
    if "L4" in levels:
        out["l4"] = {h: {k: s[k] for k in ("inputs", "grids_identical", "halting_agree", "cell_agreement")}
                     for h, s in levels["L4"].details.get("modes", {}).items()}
    return out


def summary_row(result: ExportResult) -> dict[str, Any]:
    m, rep = result.manifest, result.report
    levels = {lv.level: lv for lv in rep.levels}
    l3 = levels.get("L3")
    row = {"mode": m["act"]["mode"] + (f" ({m['act']['halt']})" if m["act"]["halt"] else ""),
           "precision": m["precision"], "mb": m["onnx"]["bytes"] / 1e6, "ops": len(m["onnx"]["op_types"]),
           "export_s": m["onnx"]["export_seconds"], "total_s": round(result.total_seconds, 1),
           "lint": {t: v["ok"] for t, v in m["targets"].items()}}
    for name in ("L1", "L2", "L3", "L4"):
        lv = levels.get(name)
        row[name] = "-" if lv is None else ("ok" if lv.ok else "FAIL")
    if l3 is not None:
        row["l3_max_abs"] = l3.details.get("max_abs", {})
    return row


def export_model(model: Any, out: str | Path, *, act: str = "step", segments: int | None = None, opset: int = 17,
                 precision: str = "fp32", target: str | None = None, batch: int | None = None, halt: str = "max",
                 source: dict[str, Any] | None = None, identifiers: list[str] | None = None,
                 puzzle_dtype: str = "float16", l3_batches: tuple[int, ...] = DEFAULT_L3_BATCHES,
                 l4_source: str | None = None, l4_puzzles: int = DEFAULT_L4_PUZZLES, force: bool = False,
                 log: Callable[[str], None] | None = None, qdq: QdqOptions | None = None,
                 _corrupt: Callable[[Any], Any] | None = None) -> ExportResult:
    """Export a model object to a bundle folder; raises ParityError (and leaves nothing) unless L1-L4 pass.

    `_corrupt` (tests only) edits the ModelProto after export, to prove a broken graph is refused.
    """
    import hrm_edge.export.bundle as bd
    import hrm_edge.export.trt_ops as trt_ops
    from hrm_edge.config import config_to_dict
    from hrm_edge.export.onnx import ExportOptions, export_onnx, export_spec, op_counts, prepare
    from hrm_edge.export.parity import DEFAULT_L4_SOURCE, ParityError, run_ladder
    from hrm_edge.export.precision import transform_for
    from hrm_edge.runtime.ort_install import require_onnxruntime

    require_onnxruntime("export (its parity ladder runs the graph)")
    t0 = time.perf_counter()
    target = target or default_target(precision, opset)
    if target not in trt_ops.TARGETS:
        raise HrmEdgeError(f"--target must be one of {', '.join(trt_ops.TARGETS)}, got {target!r}")
    if puzzle_dtype not in ("float16", "float32"):
        raise HrmEdgeError(f"puzzle table dtype must be float16 or float32, got {puzzle_dtype!r}")
    if precision == "int8-qdq":
        transform = _qdq_transform(model, qdq or QdqOptions(), identifiers, log)
    else:
        transform = transform_for(precision)
    opts = ExportOptions(act=act, segments=segments, opset=opset, halt=halt, batch=batch)
    opts.validate(export_spec(model, segments))  # every option before any tracing
    with bd.StagedBundle(out, force=force) as staged:
        if log:
            log(f"tracing {act} graph ({precision}, opset {opset})")
        graph = export_onnx(model, opts, transform)
        if _corrupt is not None:
            graph.model = _corrupt(graph.model)
        onnx_info = bd.save_model(graph.model, staged.dir)
        table = getattr(getattr(model, "puzzle_emb", None), "weights", None)
        if graph.spec.puzzle_emb_ndim > 0 and table is not None:
            puzzle = bd.write_puzzle_table(staged.dir, table.detach().float().cpu().numpy(), identifiers, puzzle_dtype)
        else:
            puzzle = None
        lint = {t: r.to_dict() for t, r in trt_ops.lint_all(graph.model).items()}
        manifest = bd.build_manifest(graph=graph, onnx_info=onnx_info, config=config_to_dict(model.config),
                                     precision=precision, source=source or {"kind": "model object"},
                                     puzzle=puzzle, target=target, lint=lint, ops=op_counts(graph.model),
                                     export_seconds=graph.seconds)
        bd.write_manifest(staged.dir, manifest)
        report = run_ladder(bundle=staged.dir, manifest=manifest, torch_model=prepare(model), target=target,
                            l3_batches=l3_batches if batch is None else (batch,),
                            l4_source=DEFAULT_L4_SOURCE if l4_source is None else l4_source,
                            l4_puzzles=l4_puzzles, log=log)
        manifest["parity"] = report.to_dict()
        if precision != "fp32":
            manifest["precision_report"] = precision_report(report, onnx_info["bytes"])
        if precision == "int8-qdq":
            from hrm_edge.export.precision import qdq_body

            q = qdq or QdqOptions()
            body = qdq_body(opset)  # fp16 outside the Q/DQ pairs (fp16 scales) from opset 19
            manifest["quantization"] = {"format": "QDQ", "body": body, "scales": body,
                                        "calibration": q.calib, "calib_puzzles": q.puzzles,
                                        "augment": q.augment, "segments": graph.spec.max_steps,
                                        "weights": f"int8 symmetric {'per-channel' if q.per_channel else 'per-tensor'}",
                                        "activations": "int8 symmetric per-tensor (MinMax)",
                                        "fp32_matmuls": list(q.keep_fp32)}  # unquantized (fp16 in an fp16 body)
        elif precision == "int8":
            manifest["quantization"] = {"format": "dynamic (MatMulInteger)",
                                        "weights": "int8 per-tensor, 7-bit range (exact on CPUs without VNNI)",
                                        "activations": "uint8 per-tensor, quantized at run time"}
        manifest["timing"] = {"export_seconds": round(graph.seconds, 2),
                              "total_seconds": round(time.perf_counter() - t0, 2)}
        bd.write_manifest(staged.dir, manifest)
        if not report.ok:
            raise ParityError(report, path=out)
        path = staged.commit()
    result = ExportResult(path, manifest, report, graph.seconds, time.perf_counter() - t0)
    result.summary = summary_row(result)
    return result


def export_checkpoint(ckpt: str | Path, out: str | Path | None = None, *, identifiers: str | Path | None = None,
                      **kwargs: Any) -> ExportResult:
    """Load any recognised checkpoint (native, lite script, reference HRM / TRM) and `export_model` it."""
    from hrm_edge.model.checkpoint import load_checkpoint

    ckpt = Path(ckpt)
    ck = load_checkpoint(ckpt)
    index = read_identifiers(identifiers) if identifiers is not None else None
    ts = ck.train_state if isinstance(ck.train_state, dict) else {}
    if index is None and isinstance(ts.get("identifiers"), list):
        index = parse_identifiers(ts["identifiers"], f"{ckpt}: train_state identifiers")
    for folder in ([Path(ts["data_dir"])] if isinstance(ts.get("data_dir"), str) else []) + [ckpt.parent]:
        if index is None and (folder / "identifiers.json").exists():
            index = read_identifiers(folder)
    names = names_by_row(index) if index is not None else None
    source = {"path": str(ckpt.resolve()), "sha256": ck.sha256, "format": ck.source_format,
              "meta": {k: v for k, v in ck.meta.items() if k != "info"}}
    out = Path(out) if out is not None else default_out(ckpt, kwargs.get("act", "step"),
                                                        kwargs.get("precision", "fp32"))
    return export_model(ck.model, out, source=source, identifiers=names, **kwargs)


def verify_bundle(bundle: str | Path, ckpt: str | Path | None = None, *, target: str | None = None,
                  l3_batches: tuple[int, ...] = DEFAULT_L3_BATCHES, l4_source: str | None = None,
                  l4_puzzles: int = DEFAULT_L4_PUZZLES, log: Callable[[str], None] | None = None) -> Any:
    """Re-run the ladder on an existing bundle against its checkpoint (from --ckpt or the manifest)."""
    from hrm_edge.export.onnx import prepare
    from hrm_edge.export.parity import DEFAULT_L4_SOURCE, run_ladder
    from hrm_edge.model.checkpoint import file_sha256, load_checkpoint
    from hrm_edge.runtime.onnxruntime import read_manifest

    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    src = manifest.get("source", {})
    path = Path(ckpt) if ckpt else (Path(src["path"]) if src.get("path") else None)
    if path is None:
        raise HrmEdgeError("bundle does not name its checkpoint; pass --ckpt", bundle)
    if src.get("sha256") and path.exists() and file_sha256(path) != src["sha256"]:
        raise HrmEdgeError(f"checkpoint hash differs from the one this bundle was exported from ({src['sha256'][:12]})",
                           path)
    ck = load_checkpoint(path)
    return run_ladder(bundle=bundle, manifest=manifest, torch_model=prepare(ck.model),
                      target=target or manifest.get("target") or "trt-8.5", l3_batches=l3_batches,
                      l4_source=DEFAULT_L4_SOURCE if l4_source is None else l4_source, l4_puzzles=l4_puzzles, log=log)


__all__ = ["export_model", "export_checkpoint", "verify_bundle", "ExportResult", "default_out", "default_target",
           "summary_row", "precision_report", "QdqOptions", "DEFAULT_CALIB_SOURCE", "DEFAULT_CALIB_PUZZLES",
           "DEFAULT_L3_BATCHES", "DEFAULT_L4_PUZZLES"]
