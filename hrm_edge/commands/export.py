"""`hrm-edge export` and `hrm-edge verify`: checkpoint -> parity-checked bundle, and re-checking one."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (JetPack 6): the same parser, packaged as tomli
    import tomli as tomllib  # type: ignore[no-redef]
from rich.console import Console
from rich.table import Table

from hrm_edge.commands.options import (
    ACT_MODES,
    HALT_MODES,
    OPSET_RANGE,
    PRECISIONS,
    PUZZLE_DTYPES,
    TARGETS,
    check_choice,
    check_min,
)
from hrm_edge.errors import HrmEdgeError

# built-in defaults; a --profile (export/<name>.toml) overrides them, explicit options override both
DEFAULTS: dict[str, Any] = {"act": "step", "segments": None, "opset": 17, "precision": "fp32", "target": None,
                            "batch": "dynamic", "halt": "max"}


def load_profile(name: str) -> dict[str, Any]:
    """An export profile: `export/<name>.toml` (or a path to a .toml) with an [export] table."""
    from hrm_edge.export.trt_ops import export_dir

    path = Path(name)
    if not path.suffix:
        path = export_dir() / f"{name}.toml"
    if not path.exists():
        known = sorted(p.stem for p in export_dir().glob("*.toml"))
        raise HrmEdgeError(f"no such export profile (known: {', '.join(known) or 'none'})", path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise HrmEdgeError(f"malformed TOML: {exc}", path) from None
    section = data.get("export", {})
    unknown = sorted(set(section) - set(DEFAULTS) - {"l4_puzzles"})
    if unknown:
        raise HrmEdgeError(f"unknown keys in [export]: {', '.join(unknown)}", path)
    return section


def _batch(value: Any) -> int | None:
    if value in (None, "dynamic"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise HrmEdgeError(f"--batch must be 'dynamic' or a positive integer, got {value!r}") from None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def print_summary(con: Console, manifest: dict[str, Any], total_s: float, path: Path | None) -> None:
    parity = manifest.get("parity", {})
    levels = parity.get("levels", {})
    t = Table(title=f"export {'-> ' + str(path) if path else '(not written)'}", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value")
    act = manifest["act"]
    l3 = levels.get("L3", {})
    mx = l3.get("details", {}).get("max_abs", {})
    l3s = "-" if not l3 else ("ok " if l3["ok"] else "FAIL ") + f"{_fmt(mx.get('logits'))} / {_fmt(mx.get('q_halt'))}"
    l4 = levels.get("L4", {})
    modes = l4.get("details", {}).get("modes", {})
    l4s = "-" if not l4 else ("ok " if l4["ok"] else "FAIL ") + ", ".join(
        f"{h} {s['grids_identical']}/{s['inputs']} / {s['halting_agree']}/{s['inputs']}" for h, s in modes.items())
    if l4 and l4.get("details", {}).get("skipped"):
        l4s = "skipped"
    lint = manifest.get("targets", {})

    def lint_cell(target: str) -> str:
        r = lint.get(target)
        if r is None:
            return "-"
        return "ok" if r["ok"] else "blocked: " + ",".join(r["blocking_ops"])[:30]

    def lv(name: str) -> str:
        x = levels.get(name)
        return "-" if x is None else ("ok" if x["ok"] else "FAIL")

    rows = [
        ("ACT mode", act["mode"] + (f" (halt {act['halt']})" if act.get("halt") else "")
         + f", {act['segments']} segments"),
        ("precision", manifest["precision"]),
        ("model.onnx", f"{manifest['onnx']['bytes'] / 1e6:.2f} MB, {len(manifest['onnx']['op_types'])} op types"),
        ("TensorRT 8.5 / 10 lint", f"{lint_cell('trt-8.5')} / {lint_cell('trt-10')}"),
        ("L1 / L2", f"{lv('L1')} / {lv('L2')}"),
        ("L3 max|Δ| logits / q_halt", l3s),
        ("L4 grids / halting", l4s),
        ("time", f"export {manifest['onnx']['export_seconds']:.1f} s, total with parity {total_s:.1f} s"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    con.print(t)


def print_report(con: Console, report: Any) -> None:
    t = Table(title="parity ladder")
    t.add_column("level")
    t.add_column("result")
    t.add_column("worst tensor")
    t.add_column("detail", overflow="fold")
    for lv in report.levels:
        worst = "-" if lv.worst_tensor is None else lv.worst_tensor + (
            f" |Δ| {lv.worst:.2e} (tol {lv.tolerance:.1e})" if lv.worst is not None and lv.tolerance else "")
        t.add_row(lv.level, "[green]ok[/]" if lv.ok else "[red]FAIL[/]", worst, lv.summary)
    con.print(t)


def _puzzle_dtype(name: str) -> str:
    table = {"fp16": "float16", "float16": "float16", "fp32": "float32", "float32": "float32"}
    if name not in table:
        raise HrmEdgeError(f"--puzzle-dtype must be fp16 or fp32, got {name!r}")
    return table[name]


def check_export_options(opts: dict[str, Any], puzzle_dtype: str, l4_puzzles: int) -> None:
    """Every export option, before torch is imported, the checkpoint loaded or anything traced.

    export_model checks the same through ExportOptions.validate for API callers; here the limits come from
    commands/options.py so that a typo costs no torch import."""
    check_choice("--act", opts["act"], ACT_MODES)
    check_choice("--precision", opts["precision"], PRECISIONS)
    check_choice("--target", opts["target"], TARGETS)
    check_choice("--halt", opts["halt"], HALT_MODES)
    check_choice("--puzzle-dtype", puzzle_dtype, PUZZLE_DTYPES)
    check_min("--segments", opts["segments"], 1)
    check_min("--l4-puzzles", l4_puzzles, 0)
    check_min("--batch", _batch(opts["batch"]), 1)
    low, high = OPSET_RANGE
    if not low <= int(opts["opset"]) <= high:
        raise HrmEdgeError(f"--opset {opts['opset']} is outside the supported range {low}..{high}")


def export(
    ckpt: Path = typer.Argument(..., metavar="CKPT", help="Checkpoint: hrm-edge .pt, the lite script's "
                                                          "hrm_arc_best.pt, a reference HRM or TRM step_N file, or a "
                                                          "bare state dict."),
    out: Optional[Path] = typer.Option(None, "--out", help="Bundle folder to write. Default: <ckpt stem>-<act>"
                                                           "[-<precision>] beside the checkpoint."),
    act: Optional[str] = typer.Option(None, "--act", metavar="MODE", help="ACT mode: step (the host loops segments), "
                                      "unrolled (N segments in one graph) or loop (ONNX Loop, early exit). "
                                      "Default: step."),
    segments: Optional[int] = typer.Option(None, "--segments", help="Segments for unrolled/loop. Default: the "
                                                                    "model's halt_max_steps."),
    opset: Optional[int] = typer.Option(None, "--opset", help="ONNX opset, 13 to 20. Default: 17 (the newest "
                                                              "TensorRT 8.5 parses)."),
    precision: Optional[str] = typer.Option(None, "--precision", metavar="PREC", help="fp32, fp16 (GPU/TensorRT), "
                                            "int8 (CPU, ONNX Runtime dynamic quantization) or int8-qdq (static int8 "
                                            "Q/DQ calibrated on real ARC puzzles, for ONNX Runtime and TensorRT int8 "
                                            "engines; fp16 outside the Q/DQ pairs at opset 19 or 20). Default: fp32."),
    calib: Optional[str] = typer.Option(None, "--calib", metavar="TASKS", help="int8-qdq: ARC tasks whose augmented "
                                        "test inputs calibrate the int8 scales. Default: arc-agi-1/training (shipped "
                                        "offline)."),
    calib_puzzles: int = typer.Option(16, "--calib-puzzles", min=1, help="int8-qdq: augmented puzzles to calibrate "
                                                                         "on, each run over every ACT segment."),
    qdq_fp32: str = typer.Option("attention,heads,down,o_proj", "--qdq-fp32", metavar="GROUPS",
                                 help="int8-qdq: matmul groups left unquantized (fp32, or fp16 in an fp16 body), comma "
                                 "separated: attention (Q K^T and "
                                 "P V), heads (lm_head, q_head), down (MLP output projections), o_proj (attention "
                                 "output projections), or none. "
                                 "down,o_proj keep far more answers equal to fp32 for a few % of speed "
                                 "(benchmarks/README.md); attention,heads is the fastest."),
    per_tensor: bool = typer.Option(False, "--per-tensor", help="int8-qdq: one scale per weight matrix instead of "
                                                                "one per output channel."),
    target: Optional[str] = typer.Option(None, "--target", metavar="TARGET", help="The op-support lint that must "
                                         "pass: trt-8.5, trt-10 or ort. Default: trt-8.5 (trt-10 above opset 17, "
                                         "ort for int8)."),
    batch: Optional[str] = typer.Option(None, "--batch", metavar="N", help="'dynamic' or a fixed batch size. "
                                                                           "Default: dynamic."),
    halt: Optional[str] = typer.Option(None, "--halt", metavar="MODE", help="Halting baked into unrolled/loop "
                                       "graphs: max (reference), adaptive, batch-mean (lite: the training script's "
                                       "rule). Step bundles take every mode at run time. Default: max."),
    profile: Optional[str] = typer.Option(None, "--profile", metavar="NAME", help="Export profile: "
                                          "export/<name>.toml (cpu, orin-nano-fp16, xavier-trt85, ...) or a .toml "
                                          "path. Explicit options override it."),
    identifiers: Optional[Path] = typer.Option(None, "--identifiers", help="identifiers.json naming the "
                                                                           "puzzle-embedding rows (reference "
                                                                           "dataset layout)."),
    puzzle_dtype: str = typer.Option("fp16", "--puzzle-dtype", metavar="DTYPE", help="Storage of puzzle_emb.npy: "
                                     "fp16 (half the size) or fp32 (bit-exact rows, for comparing runtimes with the "
                                     "PyTorch table)."),
    l4_source: Optional[str] = typer.Option(None, "--l4-source", metavar="TASKS", help="ARC tasks for parity L4. "
                                            "Default: arc-agi-1/evaluation (shipped offline)."),
    l4_puzzles: Optional[int] = typer.Option(None, "--l4-puzzles", help="ARC test inputs run at L4; 0 skips L4. "
                                                                        "Default: 4."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON instead of tables."),
    update_puzzles: Optional[Path] = typer.Option(None, "--update-puzzles", metavar="BUNDLE", help="Write CKPT's "
                                                  "puzzle table and identifiers (an `adapt --mode embedding` "
                                                  "checkpoint) into this existing bundle, graph unchanged; "
                                                  "ladder-checked, replaced atomically."),
) -> None:
    """Export a checkpoint to a parity-checked ONNX bundle; refuses (exit 3, nothing written) if parity fails."""
    from hrm_edge import interrupt

    if update_puzzles is not None:
        return _update_puzzles(update_puzzles, ckpt, l4_source, l4_puzzles, as_json)
    from hrm_edge.export import DEFAULT_L4_PUZZLES, QdqOptions, default_out
    from hrm_edge.export.precision import KEEP_GROUPS

    keep = tuple(k.strip() for k in qdq_fp32.split(",") if k.strip() and k.strip() != "none")
    bad = [k for k in keep if k not in KEEP_GROUPS]
    if bad:
        raise HrmEdgeError(f"--qdq-fp32 takes {', '.join(KEEP_GROUPS)} or none, got {', '.join(bad)}")
    prof = load_profile(profile) if profile else {}
    given = {"act": act, "segments": segments, "opset": opset, "precision": precision, "target": target,
             "batch": batch, "halt": halt}
    opts = {k: v if v is not None else prof.get(k, DEFAULTS[k]) for k, v in given.items()}
    if calib is not None and opts["precision"] != "int8-qdq":
        raise HrmEdgeError(f"--calib applies to --precision int8-qdq only (precision here: {opts['precision']})")
    n_l4 = l4_puzzles if l4_puzzles is not None else int(prof.get("l4_puzzles", DEFAULT_L4_PUZZLES))
    check_export_options(opts, puzzle_dtype, n_l4)
    out = out if out is not None else default_out(ckpt, opts["act"], opts["precision"])
    existed = out.exists()
    from hrm_edge.export.bundle import check_bundle_out

    check_bundle_out(out, force)
    interrupt.nothing_written(out, existed, "the staged bundle was removed")
    from hrm_edge.export import export_checkpoint
    from hrm_edge.export.parity import ParityError

    con = Console(stderr=as_json)
    t0 = time.perf_counter()
    with con.status("exporting") as status:
        def log(msg: str) -> None:
            status.update(f"{msg}  [dim]{time.perf_counter() - t0:.0f}s[/]")
            if not as_json:
                con.log(msg)

        try:
            result = export_checkpoint(ckpt, out, act=opts["act"], segments=opts["segments"], opset=int(opts["opset"]),
                                       precision=opts["precision"], target=opts["target"], batch=_batch(opts["batch"]),
                                       halt=opts["halt"], identifiers=identifiers, l4_source=l4_source,
                                       puzzle_dtype=_puzzle_dtype(puzzle_dtype),
                                       l4_puzzles=n_l4, force=force, log=log,
                                       qdq=QdqOptions(calib=calib or QdqOptions.calib, puzzles=calib_puzzles,
                                                      per_channel=not per_tensor, keep_fp32=keep))
        except ParityError as exc:
            status.stop()
            print_report(con, exc.report)
            raise
    interrupt.outcome(f"the bundle {result.path} was written")
    if as_json:
        print(json.dumps(result.manifest, indent=2, default=str))
        return
    print_report(con, result.report)
    print_summary(con, result.manifest, result.total_seconds, result.path)


def _update_puzzles(bundle: Path, ckpt: Path, l4_source: Optional[str], l4_puzzles: Optional[int],
                    as_json: bool) -> None:
    """`export --update-puzzles BUNDLE CKPT`: the puzzle table replaced, the ladder re-run, atomically."""
    from hrm_edge import interrupt
    from hrm_edge.export import DEFAULT_L4_PUZZLES
    from hrm_edge.export.parity import ParityError
    from hrm_edge.export.puzzle_update import update_puzzles

    check_min("--l4-puzzles", l4_puzzles, 0)
    if not (bundle / "manifest.json").is_file():
        raise HrmEdgeError("not an export bundle (no manifest.json)", bundle)
    interrupt.outcome(f"{bundle} was left unchanged (the updated bundle is staged beside it)")
    con = Console(stderr=as_json)
    try:
        result = update_puzzles(bundle, ckpt, l4_source=l4_source,
                                l4_puzzles=DEFAULT_L4_PUZZLES if l4_puzzles is None else l4_puzzles)
    except ParityError as exc:
        print_report(con, exc.report)
        raise
    interrupt.outcome(f"the bundle {result.path} was updated")
    if as_json:
        print(json.dumps(result.manifest, indent=2, default=str))
        return
    print_report(con, result.report)
    pe = result.manifest["puzzle_emb"]
    con.print(f"{result.path}: puzzle table {pe['shape'][0]} rows x {pe['shape'][1]} ({pe['dtype']}), "
              f"{pe['rows_named']} named; graph unchanged")


def verify(
    bundle: Path = typer.Argument(..., metavar="BUNDLE", help="Export bundle folder (with manifest.json)."),
    ckpt: Optional[Path] = typer.Option(None, "--ckpt", help="Where the bundle's own checkpoint is now, if it moved "
                                        "(default: the path in the manifest); its sha256 must equal the manifest's."),
    target: Optional[str] = typer.Option(None, "--target", metavar="TARGET", help="Lint target: trt-8.5, trt-10 or "
                                         "ort. Default: the manifest's."),
    l4_source: Optional[str] = typer.Option(None, "--l4-source", metavar="TASKS", help="ARC tasks for L4. Default: "
                                            "arc-agi-1/evaluation."),
    l4_puzzles: Optional[int] = typer.Option(None, "--l4-puzzles", help="ARC test inputs run at L4; 0 skips L4. "
                                                                        "Default: 4."),
    as_json: bool = typer.Option(False, "--json", help="Print the parity report as JSON."),
) -> None:
    """Re-run the parity ladder (L1-L4) on an existing bundle; exit 3 if any level fails."""
    from hrm_edge.export import DEFAULT_L4_PUZZLES, verify_bundle

    check_choice("--target", target, TARGETS)
    check_min("--l4-puzzles", l4_puzzles, 0)
    from hrm_edge.runtime.bundle_check import check_bundle
    check_bundle(bundle)
    con = Console(stderr=as_json)
    t0 = time.perf_counter()
    with con.status("verifying") as status:
        report = verify_bundle(bundle, ckpt, target=target, l4_source=l4_source,
                               l4_puzzles=DEFAULT_L4_PUZZLES if l4_puzzles is None else l4_puzzles,
                               log=lambda m: status.update(f"{m}  [dim]{time.perf_counter() - t0:.0f}s[/]"))
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print_report(con, report)
    if not report.ok:
        print(f"error: {bundle}: {report.message()}", file=sys.stderr)
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify)
