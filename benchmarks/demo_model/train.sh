#!/usr/bin/env bash
# Reproduce the demo model (issue 12): the data, then the training run, on a 2-core CPU.
# Selection rule, fixed before training: every ARC-AGI-1 task (training and evaluation sets) whose
# grids all fit a 6x6 canvas (59 tasks, 69 test inputs). Their demonstration pairs, under 16
# augmentations each, are the training data; every test input is held out (test/ split).
# About 60-70 minutes on a 2-core CPU (one training thread).
set -euo pipefail
DATA=${DATA:-demo_data}
RUN=${RUN:-demo_run}
hrm-edge build-data -s arc-agi-1 --canvas 6 --skip-larger --hold-out-tests -n 16 --seed 42 -o "$DATA" --overwrite
hrm-edge train --data "$DATA" --config "$(dirname "$0")/config.toml" --out "$RUN" --steps 10000
