"""`hrm-edge bench --ckpt/--bundle/--engine`: latency and throughput of given runtimes on N puzzles.

Each runtime runs the same puzzles (augmented test inputs of TASKS, or random grids) `repeat` times
after one untimed warm-up batch; on a Jetson, `power` samples tegrastats during each timed run. A
runtime that cannot run here is a result with its reason. The record goes to a JSON file.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from hrm_edge.bench.compare import machine_info
from hrm_edge.bench.inputs import synthetic_batches, task_batches
from hrm_edge.bench.timing import latency_stats
from hrm_edge.runtime.batches import Batch, run_batches
from hrm_edge.solve.run import load_task_list
from hrm_edge.solve.runners import probe_runtime

#: (kind, artifact, device) per runtime: torch | onnxruntime | tensorrt
RuntimeSpec = tuple[str, Path, str | None]


def bench_runtimes(specs: list[RuntimeSpec], tasks: str | None, out: Path, *, puzzles: int, batch: int, halt: str,
                   repeat: int, seed: int = 0, threads: int | None = None, power: bool = False,
                   say: Callable[[str], None] = lambda _: None,
                   progress: Callable[[str, int], Callable[[int], None]] | None = None) -> list[dict[str, Any]]:
    """Time every runtime of `specs`; write the record to `out` and return its per-runtime results."""
    from hrm_edge.fileio import atomic_write_json
    from hrm_edge.runtime.jetson_power import TegrastatsSampler, require_tegrastats

    if power:
        require_tegrastats()
    results: list[dict[str, Any]] = []
    loaded: list[Any] | None = None
    for kind, path, dev in specs:
        rt, reason, status = probe_runtime(kind, path, device=dev, threads=threads)
        if rt is None:
            results.append({"runtime": f"{kind} {path.name}", "kind": kind, "artifact": str(path), "status": status,
                            "reason": reason})
            continue
        canvas = rt.runner.spec.canvas
        batches: list[Batch]
        if tasks is not None:
            if loaded is None:
                loaded, _ = load_task_list(tasks, canvas, None, say)
            batches = task_batches(loaded, rt, puzzles, batch)
        else:
            batches = synthetic_batches(puzzles, batch, canvas, rt.runner.spec.puzzle_emb_ndim, seed)
        secs: list[float] = []
        sizes: list[int] = []
        steps: list[float] = []
        watts: dict[str, Any] = {}
        try:
            with rt.runner:
                total = len(batches) and sum(b.size for b in batches) * repeat
                adv = progress(rt.label, total) if progress else None
                for r in range(repeat):
                    if r == 0 and batches:  # warm up outside the power window
                        rt.runner.run_act(batches[0].tokens, batches[0].puzzle_emb, halt=halt)
                    with TegrastatsSampler() if power else nullcontext() as sampler:
                        rec = run_batches(rt.runner, batches, halt, warmup=False, on_batch=adv)
                    if sampler is not None:
                        watts = sampler.report(sum(rec.batch_sizes)).as_dict()
                    secs += rec.batch_seconds
                    sizes += rec.batch_sizes
                    steps.append(float(rec.flat("steps").mean()))
        except Exception as exc:
            results.append({"runtime": rt.label, "kind": kind, "artifact": str(path), "status": "error",
                            "reason": f"{type(exc).__name__}: {exc}"})
            continue
        results.append({"runtime": rt.label, "kind": kind, "artifact": str(path), "status": "ok",
                        "size_bytes": rt.size_bytes, "device": rt.device, "batch": batch, "halt": halt,
                        "mean_steps": float(sum(steps) / len(steps)), **latency_stats(secs, sizes),
                        **({"power": watts} if watts else {})})
    atomic_write_json(out, {"puzzles": puzzles, "batch": batch, "repeat": repeat, "halt": halt,
                            "source": tasks or "random grids", "machine": machine_info(), "results": results})
    return results


__all__ = ["bench_runtimes", "RuntimeSpec"]
