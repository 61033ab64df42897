"""Thread / spinning / OpenMP-wait settings under background load: which default survives a busy CPU.

    .venv/bin/python benchmarks/threads/measure.py --out benchmarks/threads/results.json

For each background load (0, 2, 4 busy processes, spawned here: `python -c "while True: pass"`), three worker
processes (torch with OMP_WAIT_POLICY unset, torch with PASSIVE, ONNX Runtime) run the packaged demo model
(ACT v1, 6x6 canvas, the model `hrm-edge demo` runs) in batches of --batch puzzles, halting `max` (every
segment, so the work is fixed). A worker holds one runner per setting and interleaves them batch by batch,
--repeat rounds after a warm-up (a setting whose batches passed --budget seconds sits out the rest), so
drift in the machine's other load hits every setting alike. The figure is the median seconds per puzzle. `uptime`
and the busiest other processes are recorded beside each load, since this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUSY = "while True: pass"

# one worker process per (runtime, OpenMP wait policy): OMP_WAIT_POLICY is read once, when torch loads; ORT
# spinning and thread counts are per session. A worker interleaves its settings batch by batch (round robin),
# so a change in the machine's other load hits every setting alike.
WORKERS = [
    ("torch", None, [{"threads": 1}, {"threads": None}]),  # None: torch's default, one per core
    ("torch", "PASSIVE", [{"threads": 1}, {"threads": None}]),
    ("ort", None, [{"threads": 1, "spinning": True}, {"threads": None, "spinning": True},
                   {"threads": 1, "spinning": False}, {"threads": None, "spinning": False}]),
]


def _runner(runtime: str, setting: dict, bundle: str, checkpoint: str):
    if runtime == "torch":

        from hrm_edge.solve.runners import open_runtime

        runner = open_runtime("torch", checkpoint, device="cpu").runner
        runner.hrm_threads = setting["threads"] or DEFAULT_TORCH_THREADS
        return runner
    from hrm_edge.runtime.onnxruntime import OrtRunner

    runner = OrtRunner.from_bundle(bundle, threads=setting["threads"])
    runner.spinning = setting["spinning"]
    return runner


DEFAULT_TORCH_THREADS = 0


def worker(args: argparse.Namespace) -> None:
    """One worker: its settings interleaved; print one JSON row per setting (median seconds per puzzle)."""
    global DEFAULT_TORCH_THREADS
    import numpy as np

    from hrm_edge.demo.asset import load_asset

    if args.runtime == "torch":
        import torch

        DEFAULT_TORCH_THREADS = torch.get_num_threads()
    settings = json.loads(args.settings)
    checkpoint = str(load_asset().checkpoint)
    runners = [_runner(args.runtime, s, args.bundle, checkpoint) for s in settings]
    rng = np.random.default_rng(0)
    spec = runners[0].spec
    tokens = rng.integers(2, 12, size=(args.batch, spec.seq_len)).astype(np.int32)
    ids = rng.integers(1, 50, size=args.batch)
    times: list[list[float]] = [[] for _ in settings]
    spent = [0.0 for _ in settings]
    for r in runners:
        r.__enter__()  # the `with` protocol: activate + mark active
    rows = [r.puzzle_vectors(ids) for r in runners]

    def one(i: int) -> float:
        r = runners[i]
        if args.runtime == "torch":
            import torch

            torch.set_num_threads(r.hrm_threads)
        t0 = time.perf_counter()
        r.run_act(tokens, rows[i], halt="max")
        return time.perf_counter() - t0

    for i in range(len(settings)):
        one(i)  # warm-up
    for _ in range(args.repeat):
        for i in range(len(settings)):
            if spent[i] > args.budget:
                continue
            dt = one(i)
            spent[i] += dt
            times[i].append(dt / args.batch)
    for i, s in enumerate(settings):
        threads = s["threads"] or (DEFAULT_TORCH_THREADS if args.runtime == "torch" else "default")
        print(json.dumps({**s, "threads_used": threads, "per_puzzle_s": statistics.median(times[i]),
                          "batches": len(times[i]), "all_s": [round(t, 4) for t in times[i]]}))


def busiest(n: int = 8) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu"], capture_output=True, text=True).stdout
    return [" ".join(line.split())[:160] for line in out.splitlines()[1:n + 1]]


def export_bundle(folder: Path) -> Path:
    from hrm_edge.demo.asset import load_asset

    out = folder / "demo-step"
    subprocess.run([sys.executable, "-m", "hrm_edge.cli", "export", str(load_asset().checkpoint), "--out", str(out),
                    "--puzzle-dtype", "fp32"], check=True, stdout=subprocess.DEVNULL)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/threads/results.json")
    ap.add_argument("--loads", default="0,2,4")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--budget", type=float, default=40.0)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--runtime")
    ap.add_argument("--settings")
    ap.add_argument("--bundle")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    record = {"command": "python benchmarks/threads/measure.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
              "batch": args.batch, "loads": []}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = export_bundle(Path(tmp))
        for load in [int(x) for x in args.loads.split(",")]:
            busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(load)]
            try:
                time.sleep(2 if load else 0)
                entry = {"busy_processes": load, "uptime_before": subprocess.getoutput("uptime").strip(),
                         "busiest_before": busiest(), "rows": []}
                for runtime, wait, settings in WORKERS:
                    env = dict(os.environ)
                    env.pop("OMP_WAIT_POLICY", None)
                    if wait:
                        env["OMP_WAIT_POLICY"] = wait
                    cmd = [sys.executable, __file__, "--worker", "--runtime", runtime, "--batch", str(args.batch),
                           "--repeat", str(args.repeat), "--budget", str(args.budget), "--bundle", str(bundle),
                           "--settings", json.dumps(settings)]
                    t0 = time.time()
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
                    if res.returncode != 0:
                        raise SystemExit(res.stderr)
                    for line in res.stdout.strip().splitlines():
                        row = {"runtime": runtime, "omp_wait_policy": wait or "unset", **json.loads(line),
                               "worker_wall_s": round(time.time() - t0, 1)}
                        entry["rows"].append(row)
                        print(load, row, flush=True)
                entry["uptime_after"] = subprocess.getoutput("uptime").strip()
                record["loads"].append(entry)
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
