#!/usr/bin/env bash
# The recorded benchmark of benchmarks/README.md, in one command:
#   benchmarks/run_bench.sh            # full run (quiet machine: ~1 h on 2 cores)
# Knobs (environment): PUZZLES (per batch size, default 16), REPEAT (timed passes, default 2),
# THREADS (default: all cores), PYTHON (default: the project venv), OUT (default benchmarks/results).
# Writes OUT/<date>_<cpu>-<cores>c/{bench.json,bench.md,bench.png}; run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-/work/main/.venv/bin/python}
THREADS=${THREADS:-$(nproc)}
PUZZLES=${PUZZLES:-16}
REPEAT=${REPEAT:-2}
OUT=${OUT:-benchmarks/results}
echo "load before: $(uptime)"
PYTHONPATH=$PWD "$PY" -m hrm_edge.cli bench arc-agi-1/evaluation \
  --preset hrm-6m --preset lite-5.7m --batch 1 --batch 8 \
  --runtimes torch,torch-bf16,ort-fp32-step,ort-fp32-step-nofuse,ort-fp32-step-nobind,ort-fp32-step-basic,ort-fp32-unrolled,ort-fp32-loop,ort-int8-step,ort-int8-qdq-step \
  --puzzles "$PUZZLES" --repeat "$REPEAT" --threads "$THREADS" --calib-puzzles 8 --out-dir "$OUT"
echo "load after: $(uptime)"
