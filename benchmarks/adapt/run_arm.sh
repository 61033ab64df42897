#!/usr/bin/env bash
# One arm of the unseen-tasks protocol (benchmarks/adapt/README.md), scored by `hrm-edge solve`.
#   benchmarks/adapt/run_arm.sh ARM BUDGET_S SEED TASKS BASE_CKPT OUT_DIR [BASE_CONFIG]
# ARM: zero-shot | embedding | full | scratch. Writes OUT_DIR/ARM-BUDGET-sSEED{.pt,.json,_scores.json,.log}
# and appends one JSON line to OUT_DIR/results.jsonl. Same solver settings for every arm.
set -euo pipefail
arm=$1 budget=$2 seed=$3 tasks=$4 base=$5 out=$6 config=${7:-}
HRM=${HRM:-.venv/bin/hrm-edge}
SOLVE_AUGMENT=${SOLVE_AUGMENT:-8}
THREADS=${THREADS:-1}
mkdir -p "$out"
name="$arm-$budget-s$seed${ADAPT_EVALS:+-e$ADAPT_EVALS}"
log="$out/$name.log"
load_before=$(cut -d' ' -f1 /proc/loadavg)
t0=$(date +%s)
case "$arm" in
  zero-shot) "$HRM" adapt "$tasks" --ckpt "$base" --out "$out/$name.pt" --steps 0 --augment "${ADAPT_AUGMENT:-64}" \
               --seed "$seed" --threads "$THREADS" >"$log" 2>&1 ;;
  embedding|full) "$HRM" adapt "$tasks" --ckpt "$base" --out "$out/$name.pt" --budget "$budget" --mode "$arm" \
               --augment "${ADAPT_AUGMENT:-64}" --evals "${ADAPT_EVALS:-8}" --seed "$seed" --threads "$THREADS" >"$log" 2>&1 ;;
  scratch)   # a fresh model (the base's recipe) on the same demonstration pairs, stopped at the budget
             data="$out/$name-data"; run="$out/$name-run"
             rm -rf "$data" "$run"
             "$HRM" build-data --source "$tasks" --canvas "${CANVAS:-8}" --out "$data" --augment "${ADAPT_AUGMENT:-64}" --hold-out-tests \
               --seed "$seed" >"$log" 2>&1
             # the schedule (warmup, cosine) is laid over the steps one core makes in the budget, as adapt lays it
             # over its budget: SCRATCH_RATE steps/s is base8.toml's measured rate on one core (46 samples/s, batch 32)
             steps=${SCRATCH_STEPS:-$(python3 -c "print(max(1, int($budget * ${SCRATCH_RATE:-1.4})))")}
             timeout -s INT "$budget" "$HRM" train --data "$data" --config "$config" --out "$run" --seed "$seed" --steps "$steps" \
               >>"$log" 2>&1 || true
             cp "$(ls -v "$run"/checkpoints/step_*.pt | tail -1)" "$out/$name.pt" ;;
  *) echo "unknown arm $arm" >&2; exit 2 ;;
esac
adapt_s=$(( $(date +%s) - t0 ))
ids=()  # the scratch checkpoint names its rows through its dataset's identifiers.json
[ "$arm" = scratch ] && ids=(--identifiers "$out/$name-data/identifiers.json")
"$HRM" solve "$tasks" --ckpt "$out/$name.pt" --out "$out/$name.json" --augment "$SOLVE_AUGMENT" --seed 0 \
  --threads "$THREADS" "${ids[@]}" >>"$log" 2>&1 || true
python3 - "$out/${name}_scores.json" "$arm" "$budget" "$seed" "$adapt_s" "$load_before" "${ADAPT_EVALS:-}" >>"$out/results.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
solved = round(sum(t["pass2"] * t["n_known"] for t in d["per_task"] if t["pass2"] is not None))
print(json.dumps({"arm": sys.argv[2], "evals": None if sys.argv[2] in ("scratch", "zero-shot") else
                  int(sys.argv[7] or 8), "budget_s": int(sys.argv[3]), "seed": int(sys.argv[4]),
                  "adapt_wall_s": int(sys.argv[5]), "load_before": float(sys.argv[6]),
                  "solved": solved, "test_inputs": sum(t["n_known"] for t in d["per_task"]),
                  "pass@2": d["summary"]["pass@2"], "pass@1": d["summary"]["pass@1"],
                  "blank_identifiers": d.get("blank_identifiers")}))
PY
tail -1 "$out/results.jsonl"
