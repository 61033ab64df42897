"""Static vs continuous batching under load, and the service's overhead against in-process solving.

    .venv/bin/python benchmarks/serve/bench_serve.py --out benchmarks/serve/results/<label>

For each model (the packaged demo model, and a model whose halting spreads: `spread_model.py`) and each
schedule (static, continuous) at equal slots, interleaved, `--repeats` times:
- in-process: `solve`'s own path in this process (plan, batches, `solve.schedule.run_batches_scheduled`,
  decide) over every benchmark task: puzzles/s;
- service: `hrm-edge serve` started in a subprocess on 127.0.0.1, then a load generator (httpx, async:
  `--concurrency` clients in a closed loop, each request one task, bounded by a per-request and a total
  timeout) sends every task once: puzzles/s over the run's wall time, request latency p50/p90/p99, and
  the server's own /metrics (segments, slot occupancy). The server is stopped with SIGTERM (exit 0 checked).
Both run torch on `--threads` threads. Before and after each run the load average (/proc/loadavg) is
recorded: the machine is shared, so every figure stands beside its load. Writes results.json and
results.md into --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

DEMO = ROOT / "hrm_edge" / "assets" / "demo" / "model.pt"


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


# --------------------------------------------------------------------------------------------------
# in-process
# --------------------------------------------------------------------------------------------------
def in_process(ckpt: Path, tasks: list, schedule: str, slots: int, augment: int, threads: int) -> dict[str, Any]:
    from hrm_edge.solve.runners import open_runtime
    from hrm_edge.solve.schedule import run_batches_scheduled
    from hrm_edge.solve.solver import SolveOptions, decide, make_batches, plan_tasks

    rt = open_runtime("torch", ckpt, threads=threads, device="cpu")
    opts = SolveOptions(augment=augment, halt="adaptive", batch=slots)
    with rt.runner:
        warm = plan_tasks(tasks[:2], opts, rt.runner.spec.canvas, rt.puzzles)
        run_batches_scheduled(rt.runner, make_batches(warm, rt.puzzles).batches, "adaptive", schedule=schedule,
                              slots=slots, warmup=False)
        calls0 = len(rt.runner.inference_times)
        t0 = time.perf_counter()
        plan = plan_tasks(tasks, opts, rt.runner.spec.canvas, rt.puzzles)
        rec = run_batches_scheduled(rt.runner, make_batches(plan, rt.puzzles).batches, "adaptive",
                                    schedule=schedule, slots=slots, warmup=False)
        sub = decide(plan, rec).submission()
        wall = time.perf_counter() - t0
        calls = len(rt.runner.inference_times) - calls0
    steps = rec.flat("steps").astype(int)
    return {"puzzles": int(steps.size), "wall_s": wall, "puzzles_per_s": steps.size / wall,
            "segment_calls": calls, "steps_hist": np.bincount(steps).tolist(), "mean_steps": float(steps.mean()),
            "submission": sub}


# --------------------------------------------------------------------------------------------------
# the service under load
# --------------------------------------------------------------------------------------------------
def start_server(ckpt: Path, schedule: str, slots: int, augment: int, threads: int) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "hrm_edge.cli", "serve", "--ckpt", str(ckpt), "--port", "0", "--slots", str(slots),
           "--schedule", schedule, "--halt", "adaptive", "--augment", str(augment), "--threads", str(threads),
           "--max-queue", "100000", "--timeout", "600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "serving on http://" in line:
                found["url"] = line.split("serving on ")[1].split()[0]
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(180) or "url" not in found:
        proc.kill()
        raise SystemExit("the server did not start")
    return proc, found["url"]


async def load(url: str, bodies: list[tuple[str, bytes]], concurrency: int, request_timeout: float,
               total_timeout: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    puzzles = 0
    answers: dict[str, Any] = {}
    todo = list(range(len(bodies)))

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal puzzles
        while todo:
            i = todo.pop(0)
            tid, body = bodies[i]
            t0 = time.perf_counter()
            r = await c.post(f"{url}/solve", params={"id": tid}, content=body, timeout=request_timeout,
                             headers={"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if r.status_code == 200:
                a = r.json()
                puzzles += a["puzzles"]
                answers[tid] = a["attempts"]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as c:
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(client(c) for _ in range(concurrency))), total_timeout)
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "statuses": statuses, "puzzles": puzzles, "wall_s": wall,
            "puzzles_per_s": puzzles / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p90_ms": float(np.percentile(lat, 90)), "p99_ms": float(np.percentile(lat, 99)), "answers": answers}


def metrics(url: str) -> dict[str, float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for s in fam.samples:
            if not s.labels:
                out[s.name] = s.value
    return out


def service(ckpt: Path, tasks: list, schedule: str, slots: int, augment: int, threads: int, concurrency: int
            ) -> dict[str, Any]:
    proc, url = start_server(ckpt, schedule, slots, augment, threads)
    try:
        bodies = [(t.id, json.dumps(t.to_json()).encode()) for t in tasks]
        asyncio.run(load(url, bodies[:2], 2, 300, 600))  # warm-up
        before = metrics(url)
        got = asyncio.run(load(url, bodies, concurrency, 300, 1800))
        after = metrics(url)
        got["segments"] = after["hrm_edge_segments_total"] - before["hrm_edge_segments_total"]
        got["slot_occupancy_total"] = after["hrm_edge_slot_occupancy"]
    finally:
        proc.send_signal(signal.SIGTERM)
        got_rc = proc.wait(120)
    got["exit_code"] = got_rc
    return got


# --------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tasks", type=int, default=40, help="benchmark tasks (the demo's 6x6 selection, in order)")
    ap.add_argument("--augment", type=int, default=8)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="demo,spread")
    args = ap.parse_args()

    import torch
    from spread_model import make_spread_model

    from hrm_edge.demo.asset import load_asset, select_tasks

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = select_tasks(load_asset())[:args.tasks]
    scratch = tempfile.TemporaryDirectory(prefix="hrm-edge-serve-bench-")
    models: dict[str, Path] = {}
    recipe = None
    for name in args.models.split(","):
        if name == "demo":
            models["demo"] = DEMO
        elif name == "spread":  # regenerated each run (deterministic), never kept: a temporary file
            models["spread"], recipe = make_spread_model(Path(scratch.name) / "spread.pt", tasks, args.augment)
    runs: list[dict[str, Any]] = []
    for model, ckpt in models.items():
        for rep in range(args.repeats):
            for schedule in ("static", "continuous"):
                for where in ("in-process", "service"):
                    la0 = loadavg()
                    if where == "in-process":
                        r = in_process(ckpt, tasks, schedule, args.slots, args.augment, args.threads)
                    else:
                        r = service(ckpt, tasks, schedule, args.slots, args.augment, args.threads, args.concurrency)
                    r.update(model=model, schedule=schedule, where=where, repeat=rep, loadavg_before=la0,
                             loadavg_after=loadavg())
                    runs.append(r)
                    print(f"{model:7s} {schedule:10s} {where:10s} rep {rep}: {r['puzzles_per_s']:7.1f} puzzles/s"
                          + (f"  p50 {r['p50_ms']:.0f} ms  p99 {r['p99_ms']:.0f} ms" if where == "service" else "")
                          + f"  load {la0[0]:.2f}", flush=True)
    # same answers everywhere (a check, not a figure)
    for model in models:
        subs = [r["submission"] for r in runs if r["model"] == model and r["where"] == "in-process"]
        served = [r["answers"] for r in runs if r["model"] == model and r["where"] == "service"]
        agree = all(s == subs[0] for s in subs) and all(a == {k: v for k, v in subs[0].items()} for a in served)
        print(f"{model}: every run gave the same attempts: {agree}")
        for r in runs:
            if r["model"] == model:
                r["answers_agree"] = agree
    for r in runs:
        r.pop("submission", None)
        r.pop("answers", None)
    summary = summarize(runs)
    record = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "args": vars(args) | {"out": str(args.out)},
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__},
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "spread_recipe": recipe, "summary": summary,
              "runs": runs}
    (args.out / "results.json").write_text(json.dumps(record, indent=1))
    (args.out / "results.md").write_text(markdown(record))
    print((args.out / "results.md").read_text())


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median over repeats per (model, schedule, where); ratios continuous/static and service/in-process."""
    rows = []
    keys = sorted({(r["model"], r["schedule"], r["where"]) for r in runs}, key=lambda k: (k[0], k[2], k[1]))
    for model, schedule, where in keys:
        rs = [r for r in runs if (r["model"], r["schedule"], r["where"]) == (model, schedule, where)]
        row = {"model": model, "schedule": schedule, "where": where, "repeats": len(rs),
               "puzzles": rs[0]["puzzles"], "puzzles_per_s": statistics.median(r["puzzles_per_s"] for r in rs),
               "puzzles_per_s_all": [round(r["puzzles_per_s"], 2) for r in rs],
               "loadavg": [r["loadavg_before"][0] for r in rs]}
        if where == "service":
            row.update(p50_ms=statistics.median(r["p50_ms"] for r in rs),
                       p99_ms=statistics.median(r["p99_ms"] for r in rs),
                       segments=statistics.median(r["segments"] for r in rs),
                       exit_codes=[r["exit_code"] for r in rs])
        else:
            row.update(segments=statistics.median(r["segment_calls"] for r in rs), mean_steps=rs[0]["mean_steps"],
                       steps_hist=rs[0]["steps_hist"])
        rows.append(row)
    by = {(r["model"], r["schedule"], r["where"]): r for r in rows}
    for r in rows:
        st = by.get((r["model"], "static", r["where"]))
        r["speedup_vs_static"] = r["puzzles_per_s"] / st["puzzles_per_s"] if st else None
        ip = by.get((r["model"], r["schedule"], "in-process"))
        served = ip is not None and r["where"] == "service"
        r["service_vs_in_process"] = r["puzzles_per_s"] / ip["puzzles_per_s"] if served else None
    return rows


def markdown(record: dict[str, Any]) -> str:
    a = record["args"]
    lines = [f"# Serving: static vs continuous batching ({record['time']})", "",
             f"`{record['command']}`", "",
             f"{record['machine']['cores']} cores ({record['machine']['cpu']}), torch {record['machine']['torch']} on "
             f"{a['threads']} thread(s); {a['tasks']} tasks x {a['augment']} augmentations, {a['slots']} slots, "
             f"halt adaptive, {a['concurrency']} concurrent clients (httpx); median of {a['repeats']} interleaved "
             "repeats; load = 1-min load average before each run.", "",
             "| model | where | schedule | puzzles/s (runs) | vs static | service / in-process | p50 ms | p99 ms "
             "| segment calls | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["summary"]:
        def f(v: Any, fmt: str = "{:.0f}") -> str:
            return "" if v is None else fmt.format(v)
        lines.append(f"| {r['model']} | {r['where']} | {r['schedule']} | {r['puzzles_per_s']:.1f} "
                     f"({', '.join(str(x) for x in r['puzzles_per_s_all'])}) | {f(r['speedup_vs_static'], '{:.2f}x')} "
                     f"| {f(r['service_vs_in_process'], '{:.2f}')} | {f(r.get('p50_ms'))} | {f(r.get('p99_ms'))} "
                     f"| {f(r['segments'])} | {', '.join(f'{x:.1f}' for x in r['loadavg'])} |")
    lines += ["", "Halting (adaptive, segments per puzzle, from the in-process runs):", ""]
    for r in record["summary"]:
        if r["where"] == "in-process" and r["schedule"] == "static":
            lines.append(f"- {r['model']}: mean {r['mean_steps']:.2f} segments; histogram (segments 0..max) "
                         f"{r['steps_hist']}")
    if record.get("spread_recipe"):
        lines += ["", f"Spread model: {record['spread_recipe']['how']}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
