#!/usr/bin/env bash
# Reproduce the demo model (issues 12 and 21): the data, then one training run, on a 2-core CPU.
# Selection rule, fixed before training: every ARC-AGI-1 task (training and evaluation sets) whose
# grids all fit a 6x6 canvas (59 tasks, 69 test inputs). Their demonstration pairs, under 16
# augmentations each, are the training data; every test input is held out (test/ split), and each
# task's last demonstration pair (54 tasks with at least 3) is held out as val/: the trainer evaluates
# and chooses best.pt on val/ only, so the test inputs are read once, by `hrm-edge demo`.
# Usage: SEED=0 RUN=demo_run DATA=demo_data benchmarks/demo_model/train.sh   (SEED: the training seed;
# the dataset's seed stays 42, so every seed trains on the same examples). An interrupted run continues
# with: hrm-edge train --out "$RUN" --resume
# About 75 minutes per seed on a quiet 2-core CPU (one training thread).
set -euo pipefail
DATA=${DATA:-demo_data}
RUN=${RUN:-demo_run}
SEED=${SEED:-0}
if [ ! -f "$DATA/build.json" ]; then
  hrm-edge build-data -s arc-agi-1 --canvas 6 --skip-larger --hold-out-tests --validation -n 16 --seed 42 \
    -o "$DATA" --overwrite
fi
hrm-edge train --data "$DATA" --config "$(dirname "$0")/config.toml" --out "$RUN" --steps 10000 --seed "$SEED"
