"""`hrm-edge bench --preset/--suite` as one call: check every option, build or load the models, measure the
matmul peaks, run the variant suite (suite.py) and write its record (report.py).

Everything a user can get wrong (variant names, presets, checkpoints, the output folder) is checked
before the first model is built, so a typo costs no minutes of measuring.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hrm_edge.bench.flops import segment_flops
from hrm_edge.bench.inputs import synthetic_batches
from hrm_edge.bench.peaks import machine_info, measure_peaks
from hrm_edge.bench.report import result_dir, write_record
from hrm_edge.bench.suite import DEFAULT_VARIANTS, SuiteConfig, parse_variants, run_suite
from hrm_edge.errors import HrmEdgeError
from hrm_edge.fileio import check_output
from hrm_edge.runtime.batches import Batch


def bench_suite(tasks: str | None, presets: list[str], ckpts: list[Path], runtimes: str | None,
                batches: list[int], puzzles: int, halt: str, repeat: int, threads: int | None, out_dir: Path,
                peaks: bool, calib_puzzles: int, seed: int, *, command: str = "",
                say: Callable[[str], None] = lambda _: None) -> dict[str, Path]:
    """`bench --preset/--suite`: validate everything, then peaks, then every variant; write the record (JSON,
    markdown, PNG under a folder named for the machine) and return their paths. `command` is recorded as given."""
    import torch

    from hrm_edge.config import preset as make_preset
    from hrm_edge.model import build_model
    from hrm_edge.model.checkpoint import load_checkpoint

    variants = parse_variants(runtimes or ",".join(DEFAULT_VARIANTS))
    cfgs = [(p, make_preset(p)) for p in presets]  # unknown preset: one error before any work
    for c in ckpts:
        if not c.exists():
            raise HrmEdgeError("no such checkpoint", c)
    check_output(out_dir, kind="dir", what="bench results folder")
    if threads:
        torch.set_num_threads(threads)
    models = [(f"{p} (random weights)", build_model(c, seed=seed)) for p, c in cfgs]
    models += [(c.name, load_checkpoint(c).model) for c in ckpts]
    for _, m in models:
        m.eval()
    load_start = list(os.getloadavg())
    pk: dict[str, Any] = {}
    if peaks:
        say("measuring matmul peaks")
        pk = measure_peaks(threads)
    cfg = SuiteConfig(batches=tuple(batches), repeat=repeat, halt=halt, threads=threads, variants=tuple(variants),
                      calib_puzzles=calib_puzzles)

    def inputs(model: Any, b: int) -> list[Batch]:
        n = b * max(1, -(-puzzles // b))
        c = model.config
        if tasks is None:
            return synthetic_batches(n, b, c.canvas, c.puzzle_emb_ndim, seed)
        from hrm_edge.export.calib import calibration_puzzles

        tok, pe = calibration_puzzles(tasks, model, n, augment=8, seed=seed)
        return [Batch(tok[s:s + b], None if pe is None else pe[s:s + b]) for s in range(0, len(tok), b)]

    rows = run_suite(models, inputs, cfg, pk, log=say)
    record = {"command": command,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine_info(), "peaks": pk,
              "load_start": load_start, "load_end": list(os.getloadavg()),
              "config": {"batches": batches, "repeat": repeat, "halt": halt, "threads": threads, "puzzles": puzzles,
                         "seed": seed},
              "inputs": (f"augmented test inputs of {tasks}" if tasks else "random grids"),
              "models": {label: {**segment_flops(m.config).to_dict(), "segments": m.config.max_steps,
                                 "gflop_per_segment_per_puzzle": segment_flops(m.config).total / 1e9}
                         for label, m in models},
              "variants": {v.name: v.what for v in variants}, "rows": rows}
    return write_record(record, result_dir(out_dir, record["machine"]))


__all__ = ["bench_suite"]
