"""The benchmark record: JSON (everything), markdown (the tables) and PNG, named by machine and date.

    benchmarks/results/<date>_<cpu>-<N>c/bench.json | bench.md | bench.png
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

COLUMNS = ("variant", "batch", "segment p50/p90/p99 ms", "puzzle p50/p90/p99 ms", "puzzles/s", "x torch",
           "GFLOP/s", "% fp32 peak", "grids = torch", "cells = torch", "peak MB")


def result_dir(root: str | Path, machine: dict[str, Any]) -> Path:
    """`root/<YYYY-MM-DD>_<cpu model slug>-<cores>c`: one folder per machine and day."""
    cpu = machine.get("cpu", {})
    slug = re.sub(r"[^a-z0-9]+", "-", str(cpu.get("model", "cpu")).lower()).strip("-")[:40] or "cpu"
    return Path(root) / f"{time.strftime('%Y-%m-%d')}_{slug}-{cpu.get('cpus', '?')}c"


def _f(v: Any, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def _three(d: dict[str, float] | None) -> str:
    if not d:
        return "—"
    return f"{d['p50']:.0f} / {d['p90']:.0f} / {d['p99']:.0f}"


def table_rows(rows: list[dict[str, Any]], model: str) -> list[list[str]]:
    torch_rate = {r["batch"]: r["puzzles_per_s"] for r in rows
                  if r["model"] == model and r["variant"] == "torch" and r["status"] == "ok"}
    out = []
    for r in rows:
        if r["model"] != model:
            continue
        if r["status"] != "ok":
            out.append([r["variant"], str(r["batch"]), f"{r['status']}: {r.get('reason', '')}"[:80]] + ["—"] * 8)
            continue
        base = torch_rate.get(r["batch"])
        out.append([r["variant"], str(r["batch"]), _three(r["segment_ms"]), _three(r["puzzle_ms"]),
                    f"{r['puzzles_per_s']:.2f}", _f(r["puzzles_per_s"] / base if base else None, ".2f"),
                    f"{r['achieved_gflops']:.0f}", _f(r.get("pct_of_fp32_peak"), ".0f"),
                    _f(r.get("grids_equal_torch_pct"), ".0f") + "%", _f(r.get("cells_equal_torch_pct"), ".1f") + "%",
                    f"{r['peak_rss_mb']:.0f}"])
    return out


def markdown(record: dict[str, Any]) -> str:
    m, pk = record["machine"], record["peaks"]
    cpu = m.get("cpu", {})
    lines = ["# hrm-edge bench", "",
             f"Machine: {cpu.get('model', '?')}, {cpu.get('cpus', '?')} CPUs ({', '.join(cpu.get('flags', []))}); "
             f"torch {m.get('torch')}, onnxruntime {m.get('onnxruntime')}, {record['config']['threads']} threads; "
             f"load average at start {', '.join(f'{x:.1f}' for x in record.get('load_start', []))}, "
             f"at end {', '.join(f'{x:.1f}' for x in record.get('load_end', []))}.", "",
             f"Command: `{record['command']}`", "",
             "Matmul peaks measured in this run (GFLOP/s; int8 in GOP/s): "
             f"torch fp32 {_f(pk.get('torch', {}).get('fp32'), '.0f')}, "
             f"bf16 {_f(pk.get('torch', {}).get('bf16'), '.0f')}, "
             f"int8 {_f(pk.get('torch', {}).get('int8'), '.0f')}; ONNX Runtime fp32 "
             f"{_f(pk.get('onnxruntime', {}).get('fp32'), '.0f')}, int8 (u8 x s8) "
             f"{_f(pk.get('onnxruntime', {}).get('int8'), '.0f')}.", ""]
    for model, info in record["models"].items():
        lines += [f"## {model}", "",
                  f"{info['gflop_per_segment_per_puzzle']:.1f} GFLOP per segment per puzzle "
                  f"({info['layer_passes']} layer passes over {info['positions']} positions, attention "
                  f"{100 * info['attention_share']:.0f}%); {info['segments']} segments "
                  f"(halt {record['config']['halt']}); "
                  f"inputs: {record['inputs']}.", "",
                  "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                  for row in table_rows(record["rows"], model)]
        lines.append("")
    lines += ["Segment latency: one ACT segment (a `step` call; unrolled / loop: call time / segments). Puzzle "
              "latency: batch wall time / batch size over the whole ACT run. GFLOP/s: analytic matmul FLOPs of a "
              "segment x batch / segment p50. `x torch`: puzzles/s relative to PyTorch eager at the same batch. "
              "Agreement is with PyTorch fp32 on the same inputs (random weights amplify rounding over segments). "
              "peak MB: resident memory above the level before the variant started.", ""]
    lines += [f"- `{v}`: {w}" for v, w in record["variants"].items()]
    return "\n".join(lines) + "\n"


def plot(record: dict[str, Any], path: Path) -> Path:
    """Puzzles/s of every variant, one panel per model, bars per batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(record["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(6 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = [r for r in record["rows"] if r["model"] == model and r["status"] == "ok"]
        variants = list(dict.fromkeys(r["variant"] for r in rows))
        batches = sorted({r["batch"] for r in rows})
        w = 0.8 / max(1, len(batches))
        for i, b in enumerate(batches):
            vals = [next((r["puzzles_per_s"] for r in rows if r["variant"] == v and r["batch"] == b), 0.0)
                    for v in variants]
            ax.bar([x + i * w for x in range(len(variants))], vals, w, label=f"batch {b}")
        ax.set_xticks([x + w * (len(batches) - 1) / 2 for x in range(len(variants))])
        ax.set_xticklabels(variants, rotation=35, ha="right", fontsize=7)
        ax.set_ylabel("puzzles / s")
        ax.set_title(model, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    cpu = record["machine"].get("cpu", {})
    fig.suptitle(f"{cpu.get('model', '?')} ({cpu.get('cpus', '?')} CPUs), {record['config']['threads']} threads, "
                 f"load {record.get('load_start', [0])[0]:.1f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_record(record: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    from hrm_edge.fileio import atomic_write_bytes, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "bench.json", record)
    md = markdown(record)
    atomic_write_bytes(out_dir / "bench.md", lambda f: f.write(md.encode()))
    return {"json": out_dir / "bench.json", "md": out_dir / "bench.md", "png": plot(record, out_dir / "bench.png")}


__all__ = ["result_dir", "markdown", "plot", "write_record", "table_rows"]
