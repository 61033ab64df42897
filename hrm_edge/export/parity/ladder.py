"""The ladder: L1..L4 in order on a bundle, stopping at the first failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from hrm_edge.export.parity.l1_structure import check_l1
from hrm_edge.export.parity.l2_weights import check_l2
from hrm_edge.export.parity.l3_teacher_forced import check_l3
from hrm_edge.export.parity.l4_free_run import check_l4
from hrm_edge.export.parity.report import LevelResult, Log, ParityReport


def run_ladder(*, bundle: Path, manifest: dict[str, Any], torch_model: Any, target: str, l3_batches: tuple[int, ...],
               l4_source: str | None, l4_puzzles: int, log: Log | None = None, seed: int = 0) -> ParityReport:
    """L1..L4 in order, stopping at the first failure. `torch_model` is the prepared fp32 reference."""
    from hrm_edge.runtime.onnxruntime import OrtRunner

    precision = manifest["precision"]
    report = ParityReport(precision)
    path = bundle / manifest["onnx"]["file"]
    model = onnx.load(str(path))
    if log:
        log("L1 checker, shapes, lint")
    report.levels.append(check_l1(path, model, target, manifest["onnx"]["opset"]))
    if not report.ok:
        return report
    if log:
        log("L2 weights")
    report.levels.append(check_l2(model, torch_model, precision, bundle, manifest))
    if not report.ok:
        return report
    del model
    runner = OrtRunner.from_bundle(bundle)
    spec = runner.spec
    static = manifest["batch"] if isinstance(manifest["batch"], int) else None
    batches = (static,) if static else l3_batches
    with runner:
        report.levels.append(check_l3(runner, torch_model, spec, precision, batches, seed=seed, log=log))
        if not report.ok:
            return report
        if l4_source and l4_puzzles > 0:
            report.levels.append(check_l4(runner, torch_model, spec, precision, l4_source, l4_puzzles, static, log=log))
        else:
            report.levels.append(LevelResult("L4", True, "skipped (no ARC source / --l4-puzzles 0)",
                                             details={"skipped": True}))
    return report
