"""Run a command and report its wall time and peak memory, summed over its whole process tree.

`/usr/bin/time -v` reports only the largest single process, which flatters a builder that
fans out to worker processes; this samples every descendant every 20 ms from /proc and
reports the peak of the summed RSS (an upper bound: forked workers share pages) and of the
summed PSS (shared pages split between their users, the honest figure), plus the kernel's
own high-water mark of the largest single process (VmHWM, catches spikes between samples).

    python benchmarks/build_data/measure.py --examples-from OUT_DIR -- CMD ARGS...

With --examples-from, the examples written (sum of rows of every `*__inputs.npy` under the
output folder) are counted and examples/s reported. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(_children(p))
    return seen


def _mem(pid: int) -> tuple[int, int, int]:
    """(rss, pss, hwm) in KiB for one process; zeros if it is gone."""
    rss = pss = hwm = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, pss, hwm


def _count_examples(out: Path) -> int:
    import numpy as np

    return sum(int(np.load(p, mmap_mode="r").shape[0]) for p in out.rglob("*__inputs.npy"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--examples-from", type=Path, default=None)
    ap.add_argument("--label", default="")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=sys.stderr)  # keep our stdout for the one JSON line
    peak_rss = peak_pss = peak_hwm = 0
    while proc.poll() is None:
        rss = pss = 0
        for p in _tree(proc.pid):
            r, s, h = _mem(p)
            rss, pss, peak_hwm = rss + r, pss + s, max(peak_hwm, h)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    result = {
        "label": args.label,
        "command": " ".join(cmd),
        "returncode": proc.returncode,
        "wall_s": round(wall, 2),
        "peak_tree_rss_mb": round(peak_rss / 1024, 1),
        "peak_tree_pss_mb": round(peak_pss / 1024, 1),
        "peak_single_process_hwm_mb": round(peak_hwm / 1024, 1),
        "cpus": os.cpu_count(),
    }
    if args.examples_from is not None and proc.returncode == 0:
        n = _count_examples(args.examples_from)
        result["examples"] = n
        result["examples_per_s"] = round(n / wall)
    print(json.dumps(result))
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
