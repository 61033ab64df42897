"""`hrm-edge bench --preset/--ckpt`: every runtime variant of one model, side by side, against the machine's peaks.

One run measures, for each model x batch size, every variant on the same puzzles:
- latency per ACT segment (each `step` call; unrolled / loop: call time / segments) and per puzzle
  (batch time / batch), p50/p90/p99 after a warm-up run, and puzzles/s;
- peak resident memory above the level before the variant started (sampled every 5 ms);
- achieved GFLOP/s = analytic FLOPs of a segment (bench/flops.py) x batch / segment time (p50),
  as a fraction of the fp32 matmul peak measured in the same run (bench/peaks.py);
- agreement with the PyTorch fp32 row: decoded grids identical and cells equal (argmax).

Variants are exported on the fly (L1/L2 parity only: structure and weights; agreement is measured
here) into a scratch folder, so a preset needs no checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hrm_edge.bench.flops import segment_flops
from hrm_edge.errors import HrmEdgeError
from hrm_edge.runtime.batches import Batch


@dataclass(frozen=True)
class Variant:
    """One way to run the model: a runtime, a precision, an ACT mode and runner options."""

    name: str
    kind: str  # torch | onnxruntime
    precision: str = "fp32"
    act: str = "step"
    options: tuple[tuple[str, Any], ...] = ()
    what: str = ""


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("torch", "torch", what="PyTorch eager fp32: eval, inference_mode, SDPA attention"),
    Variant("torch-bf16", "torch", "bf16", options=(("autocast", "bfloat16"),), what="PyTorch, bf16 autocast"),
    Variant("ort-fp32-step", "onnxruntime", what="ORT fp32, step graph, I/O binding, opt level all, fused kernels"),
    Variant("ort-fp32-step-nofuse", "onnxruntime", options=(("fusions", False),),
            what="as ort-fp32-step, graph as exported (no MultiHeadAttention / RotaryEmbedding rewrite)"),
    Variant("ort-fp32-step-nobind", "onnxruntime", options=(("io_binding", False),),
            what="as ort-fp32-step, carry through numpy"),
    Variant("ort-fp32-step-basic", "onnxruntime", options=(("opt_level", "basic"),),
            what="as ort-fp32-step, graph optimisation basic"),
    Variant("ort-fp32-step-noopt", "onnxruntime", options=(("opt_level", "none"),),
            what="as ort-fp32-step, graph optimisation off"),
    Variant("ort-fp32-unrolled", "onnxruntime", act="unrolled", what="ORT fp32, every segment in one graph (unrolled)"),
    Variant("ort-fp32-loop", "onnxruntime", act="loop", what="ORT fp32, ONNX Loop"),
    Variant("ort-int8-step", "onnxruntime", "int8", what="ORT dynamic int8 (MatMulInteger), step"),
    Variant("ort-int8-qdq-step", "onnxruntime", "int8-qdq", what="ORT static int8 QDQ, step (activations as u8)"),
    Variant("ort-int8-qdq-step-s8", "onnxruntime", "int8-qdq", options=(("uint8_activations", False),),
            what="as ort-int8-qdq-step, activations left s8 as exported"),
)}
DEFAULT_VARIANTS = ("torch", "ort-fp32-step", "ort-fp32-unrolled", "ort-fp32-loop", "ort-int8-step",
                    "ort-int8-qdq-step")


def parse_variants(text: str) -> list[Variant]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in VARIANTS]
    if bad or not names:
        raise HrmEdgeError(f"--runtimes takes a comma list of: {', '.join(VARIANTS)} (got {text!r})")
    return [VARIANTS[n] for n in names]


class PeakRss:
    """Peak resident set size while the block runs, above the level at entry (MB).

    On Linux the kernel's own high-water mark (VmHWM) is reset at entry (`/proc/self/clear_refs` = 5) and
    read at exit, so a short spike is never missed; elsewhere RSS is sampled every 5 ms (a spike shorter
    than that may be missed there).
    """

    def __enter__(self) -> PeakRss:
        self.base = self.peak = _rss_bytes()
        self._kernel_hwm = _reset_hwm()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        if not self._kernel_hwm:
            self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc: object) -> None:
        if self._kernel_hwm:
            self.peak = max(self.peak, _hwm_bytes())
        else:
            self._stop.set()
            self._t.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def _reset_hwm() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _hwm_bytes() > 0
    except OSError:
        return False


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _pct(x: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(x, 50)), "p90": float(np.percentile(x, 90)), "p99": float(np.percentile(x, 99)),
            "mean": float(x.mean())}


@dataclass
class SuiteConfig:
    batches: tuple[int, ...] = (1, 8)
    repeat: int = 2  # timed runs of every batch after the warm-up
    halt: str = "max"
    threads: int | None = None
    variants: tuple[Variant, ...] = field(default_factory=lambda: tuple(VARIANTS[n] for n in DEFAULT_VARIANTS))
    calib_puzzles: int = 8


def _runner(model: Any, v: Variant, work: Path, cache: dict[tuple[str, str], Path], cfg: SuiteConfig,
            log: Callable[[str], None]) -> Any:
    if v.kind == "torch":
        from hrm_edge.runtime.torch import TorchRunner

        r = TorchRunner.from_model(model)
        for k, val in v.options:
            setattr(r, k, val)
        return r
    from hrm_edge.export import QdqOptions, export_model
    from hrm_edge.runtime.onnxruntime import OrtRunner

    key = (v.precision, v.act)
    if key not in cache:
        log(f"exporting {v.precision} {v.act}")
        out = work / f"{v.precision}-{v.act}"
        export_model(model, out, act=v.act, precision=v.precision, l3_batches=(), l4_puzzles=0,
                     puzzle_dtype="float32", qdq=QdqOptions(puzzles=cfg.calib_puzzles, augment=4))
        cache[key] = out
    r = OrtRunner.from_bundle(cache[key], threads=cfg.threads, **{k: x for k, x in v.options if k == "opt_level"})
    for k, x in v.options:  # runner fields (io_binding, fusions, uint8_activations, ...) apply at activation
        setattr(r, k, x)
    return r


def measure(runner: Any, batches: list[Batch], halt: str, repeat: int) -> dict[str, Any]:
    """Warm-up (one segment; unrolled / loop: one call), then `repeat` timed passes over `batches`."""
    seg_ms: list[float] = []
    per_puzzle: list[float] = []
    preds: list[np.ndarray] = []
    total = 0.0
    n = 0
    with PeakRss() as mem, runner:
        full = runner.spec
        if runner.act_mode == "step":  # warm-up: one segment is enough to allocate and load everything
            runner.spec = dataclasses.replace(full, max_steps=1)
        try:
            runner.run_act(batches[0].tokens, batches[0].puzzle_emb, halt="max")
        finally:
            runner.spec = full
        for r in range(repeat):
            for b in batches:
                runner.inference_times.clear()
                t0 = time.perf_counter()
                res = runner.run_act(b.tokens, b.puzzle_emb, halt=halt)
                dt = time.perf_counter() - t0
                calls = np.asarray(runner.inference_times) * 1000.0
                segs = int(res.steps.max())
                seg_ms += list(calls) if len(calls) == segs else [float(calls.sum()) / segs] * segs
                per_puzzle += [dt * 1000.0 / b.size] * b.size
                total += dt
                n += b.size
                if r == 0:
                    preds.append(res.logits.argmax(-1).astype(np.uint8))
    return {"segment_ms": _pct(np.asarray(seg_ms)), "puzzle_ms": _pct(np.asarray(per_puzzle)),
            "puzzles_per_s": n / total, "puzzles": n, "segments_timed": len(seg_ms), "peak_rss_mb": mem.delta_mb,
            "_preds": np.concatenate(preds)}


def run_suite(models: list[tuple[str, Any]], inputs: Callable[[Any, int], list[Batch]], cfg: SuiteConfig,
              peaks: dict[str, Any], log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every variant of every model at every batch size; one row each (failures are rows with a reason)."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hrm-edge-bench-") as tmp:
        for label, model in models:
            flops = segment_flops(model.config)
            cache: dict[tuple[str, str], Path] = {}
            for b in cfg.batches:
                batches = inputs(model, b)
                ref: np.ndarray | None = None
                for v in cfg.variants:
                    row: dict[str, Any] = {"model": label, "variant": v.name, "what": v.what, "runtime": v.kind,
                                           "precision": v.precision, "act": v.act, "batch": b,
                                           "segments": model.config.max_steps,
                                           "gflop_per_segment": flops.total * b / 1e9}
                    log(f"{label} batch {b}: {v.name}")
                    try:
                        runner = _runner(model, v, Path(tmp) / label, cache, cfg, log)
                        m = measure(runner, batches, cfg.halt, cfg.repeat)
                    except Exception as exc:  # one failing variant is a row, not a lost run
                        rows.append({**row, "status": "error", "reason": f"{type(exc).__name__}: {exc}"[:300]})
                        continue
                    preds = m.pop("_preds")
                    if v.name == "torch":
                        ref = preds
                    if ref is not None:
                        row["grids_equal_torch_pct"] = 100.0 * float((preds == ref).all(-1).mean())
                        row["cells_equal_torch_pct"] = 100.0 * float((preds == ref).mean())
                    gflops = row["gflop_per_segment"] / (m["segment_ms"]["p50"] / 1000.0)
                    lib = "torch" if v.kind == "torch" else "onnxruntime"
                    peak32 = peaks.get(lib, {}).get("fp32")
                    rows.append({**row, "status": "ok", **m, "achieved_gflops": gflops,
                                 "pct_of_fp32_peak": 100.0 * gflops / peak32 if peak32 else None})
    return rows


__all__ = ["VARIANTS", "DEFAULT_VARIANTS", "Variant", "SuiteConfig", "parse_variants", "run_suite", "measure",
           "PeakRss"]
