#!/usr/bin/env bash
# The most complete real path hrm-edge has today, on the CPU, in a minute or two.
set -euo pipefail
OUT=${DEMO_OUT:-demo_out}
mkdir -p "$OUT"
echo "== 1. the first user's architecture and the published HRM at the same budget"
hrm-edge info --preset lite-5.7m | head -12
hrm-edge info --preset hrm-6m | head -12
echo "== 2. a random tiny ACT v1 checkpoint, and what hrm-edge reads back from it"
hrm-edge init --preset tiny --out "$OUT/tiny.pt" --seed 0
hrm-edge info "$OUT/tiny.pt" | head -12
