"""`hrm-edge build-engine` and `hrm-edge doctor`: the Jetson / TensorRT commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hrm_edge.errors import HrmEdgeError


def build_engine(
    bundle: Path = typer.Argument(..., help="Export bundle folder (from `hrm-edge export`)."),
    fp16: bool = typer.Option(False, "--fp16", help="Weakly typed: allow fp16 kernels, norms, softmax and reductions "
                                                    "kept fp32 by obeyed precision constraints. Strongly typed: "
                                                    "checks that the bundle is fp16 (export --precision fp16)."),
    int8: bool = typer.Option(False, "--int8", help="Int8 from the bundle's Q/DQ nodes (explicit quantization, "
                                                    "`export --precision int8-qdq`); refused without them. Weakly "
                                                    "typed, fp16 is allowed outside the Q/DQ pairs too."),
    strongly_typed: bool = typer.Option(False, "--strongly-typed", help="TensorRT 10: build a strongly typed "
                                        "network, precision from the bundle's own types (trtexec --stronglyTyped). "
                                        "TensorRT 11 builds nothing else; refused on 8.x."),
    workspace: Optional[int] = typer.Option(None, "--workspace", min=1, help="Builder workspace limit in MB "
                                                                             "(default: a quarter of a Jetson's "
                                                                             "memory, at most 4096; elsewhere "
                                                                             "TensorRT's)."),
    timing_cache: Optional[Path] = typer.Option(None, "--timing-cache", help="Timing cache file: read when it exists, "
                                                                             "written after the build."),
    min_batch: int = typer.Option(1, "--min-batch", min=1, help="Smallest batch of the optimization profile."),
    opt_batch: Optional[int] = typer.Option(None, "--opt-batch", min=1, help="Batch TensorRT tunes for "
                                                                             "(default: --max-batch)."),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="Largest batch of the optimization profile."),
    builder_level: Optional[int] = typer.Option(None, "--builder-level", min=0, max=5,
                                                help="Builder optimization level 0-5 (TensorRT 8.6+; default "
                                                     "TensorRT's 3; ignored with a note on 8.5)."),
    dla: Optional[int] = typer.Option(None, "--dla", min=0, help="Build for this DLA core (Xavier, Orin AGX/NX; "
                                                                 "not Orin Nano; needs --fp16 or --int8 and a static "
                                                                 "batch: min = opt = max)."),
    gpu_fallback: bool = typer.Option(False, "--gpu-fallback", help="With --dla: run layers the DLA cannot on "
                                                                    "the GPU."),
    out: Optional[Path] = typer.Option(None, "--out", help="Engine file (default: BUNDLE/model.engine); its "
                                                           "sidecar is written beside it as <out>.json."),
    refittable: bool = typer.Option(False, "--refittable", help="Allow `hrm-edge refit` to replace the weights later "
                                                                "(an adapted model) without a rebuild."),
) -> None:
    """Build a TensorRT engine from an export bundle, on the device that will run it."""
    from hrm_edge.fileio import check_output
    from hrm_edge.runtime.trt_build import EngineOptions
    from hrm_edge.runtime.trt_build import build_engine as build

    opts = EngineOptions(fp16=fp16, int8=int8, workspace_mb=workspace, timing_cache=timing_cache,
                         min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                         builder_level=builder_level, dla=dla, gpu_fallback=gpu_fallback,
                         strongly_typed=strongly_typed, refittable=refittable)
    opts.validate()
    from hrm_edge.runtime.bundle_check import check_bundle
    check_bundle(bundle)
    out = out or bundle / "model.engine"
    check_output(out, "file", "engine")
    if timing_cache is not None:
        check_output(timing_cache, "file", "timing cache")
    sc = build(bundle, out, opts, say=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"wrote {out} and {out.name}.json ({sc['precision']}, {sc['typing']}ly typed, TensorRT "
          f"{sc['tensorrt_version']}, {sc['device_name']}, {sc['build_seconds']:.1f} s)")


def refit(
    engine: Path = typer.Argument(..., metavar="ENGINE", help="An engine built with `build-engine --refittable`."),
    bundle: Path = typer.Option(..., "--bundle", help="The new bundle (the same model shape, new weights: e.g. "
                                                      "`export` of an `adapt --mode full` checkpoint)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Refitted engine file (default: ENGINE in place, or "
                                                           "NEW_BUNDLE/<name> when ENGINE sits in another bundle)."),
) -> None:
    """Replace a refittable engine's weights with a new bundle's, in seconds and without a rebuild."""
    from hrm_edge.fileio import check_output
    from hrm_edge.runtime.trt_refit import default_out, refit_engine

    if not engine.is_file():
        raise HrmEdgeError("no such engine file", engine)
    if not bundle.is_dir():
        raise HrmEdgeError("no such export bundle folder", bundle)
    target = out or default_out(engine, bundle)
    check_output(target, "file", "engine")
    sc = refit_engine(engine, bundle, out=target, say=lambda m: print(m, file=sys.stderr, flush=True))
    last = sc["refits"][-1]
    print(f"refitted {target} ({last['method']}, {last['seconds']:.1f} s); it now runs {bundle}")


def doctor(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of the table.")) -> None:
    """What this machine can run: Python, torch, onnxruntime (build, providers), numpy, TensorRT, CUDA, pycuda,
    JetPack (and the TensorRT it ships), power mode, clocks."""
    from hrm_edge.runtime.doctor import report, run_checks

    rows, facts = run_checks()
    if json_out:
        print(json.dumps(report(rows, facts), indent=2))
        return
    t = Table(title="hrm-edge doctor")
    for c in ("component", "status", "detail", "to install / fix"):
        t.add_column(c)
    for r in rows:
        t.add_row(*(escape(x) for x in (r.name, r.status, r.detail, r.fix)), style={"missing": "yellow"}.get(r.status))
    con = Console()
    (con if con.is_terminal else Console(width=200)).print(t)


def register(app: typer.Typer) -> None:
    app.command("build-engine")(build_engine)
    app.command("refit")(refit)
    app.command("doctor")(doctor)


__all__ = ["register", "build_engine", "doctor"]
