#!/usr/bin/env bash
# The whole unseen-tasks protocol of benchmarks/adapt/README.md, unattended and resumable: rerun the same
# command after an interruption (a session end kills it) and it picks up where it stopped.
#   benchmarks/adapt/grid.sh WORK [LANES]
# WORK holds everything (base8_data, base8_run, unseen8, out/); LANES (default 1) arms run side by side, each
# on one torch thread: LANES=2 on a 2-core machine gives every arm one whole core, as the arms were measured
# (the trainer runs this model on one thread; see base8.toml). Steps, in order:
#   1. the base: build-data on the ARC-AGI-1 training tasks that fit 8x8, train BASE_STEPS steps (resumes its run);
#   2. the unseen tasks (select_tasks.py) and the trivial baseline (trivial.py);
#   3. every arm x budget x seed not yet in WORK/out/results.jsonl (run_arm.sh), shortest budgets first;
#   4. collect.py: WORK/out/results.md and results.png.
# BASE=CKPT skips step 1 and adapts that checkpoint (benchmarks/adapt/base8/base.pt: the committed one);
# BASE_STEPS (default 3000) is the base run's length. BUDGETS (default "300 900 2700") and SEEDS (default
# "0 1 2") narrow the grid; HRM and PYTHON pick the hrm-edge and the python (with hrm_edge installed) to run.
set -euo pipefail
work=$1 lanes=${2:-1}
here=$(cd "$(dirname "$0")" && pwd)
export HRM=${HRM:-hrm-edge}
given_base=$([ -n "${BASE:-}" ] && realpath -e "$BASE")  # before the cd below: BASE may be relative
mkdir -p "$work/out"
cd "$work"
log() { echo "[$(date -u +%H:%M:%S) load $(cut -d' ' -f1 /proc/loadavg)] $*"; }

if [ -n "${BASE:-}" ]; then  # a base trained earlier (e.g. a committed weights-only copy): no base run here
  base=$given_base
else
if [ ! -f base8_data/build.json ]; then
  log "base data"
  "$HRM" build-data --source arc-agi-1/training --canvas 8 --skip-larger --augment 16 --seed 42 --out base8_data
fi
if ! grep -q '"done": true' base8_run/latest.json 2>/dev/null; then
  if [ -f base8_run/latest.json ]; then
    log "base: resuming"; "$HRM" train --out base8_run --resume
  else
    log "base: training"; "$HRM" train --data base8_data --config "$here/base8.toml" --out base8_run --steps "${BASE_STEPS:-3000}"
  fi
fi
base=$(ls -v base8_run/checkpoints/step_*.pt | tail -1)
fi
[ -d unseen8 ] || "${PYTHON:-python3}" "$here/select_tasks.py" unseen8 --canvas 8
trivial=$("${PYTHON:-python3}" "$here/trivial.py" unseen8)

have() { grep -q "\"arm\": \"$1\", \"evals\": [^,]*, \"budget_s\": $2, \"seed\": $3," out/results.jsonl 2>/dev/null; }
jobs_list=()
for seed in ${SEEDS:-0 1 2}; do have zero-shot 0 "$seed" || jobs_list+=("zero-shot 0 $seed"); done
for budget in ${BUDGETS:-300 900 2700}; do
  for seed in ${SEEDS:-0 1 2}; do
    for arm in embedding full scratch; do have "$arm" "$budget" "$seed" || jobs_list+=("$arm $budget $seed"); done
  done
done
log "base $base; ${#jobs_list[@]} arms to run, $lanes at a time"
for job in "${jobs_list[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$lanes" ]; do sleep 5; done
  read -r arm budget seed <<<"$job"
  log "start $arm budget $budget seed $seed"
  THREADS=1 bash "$here/run_arm.sh" "$arm" "$budget" "$seed" unseen8 "$base" out "$here/base8.toml" >/dev/null &
done
wait
"${PYTHON:-python3}" "$here/collect.py" out "$trivial"
