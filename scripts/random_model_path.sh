#!/usr/bin/env bash
# The most complete real path hrm-edge has today, on the CPU, in about two minutes:
# a checkpoint -> a parity-checked ONNX bundle -> real ARC tasks solved on PyTorch and ONNX Runtime
# -> one comparison table. The model is randomly initialised (training is a later issue), so its
# ARC accuracy is 0%; what the demo shows is the path and that both runtimes answer alike.
set -euo pipefail
OUT=${DEMO_OUT:-path_demo_out}
TASKS=${DEMO_TASKS:-arc-agi-1/evaluation}
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== 1. the first user's architecture and the published HRM at the same budget"
hrm-edge info --preset lite-5.7m
hrm-edge info --preset hrm-6m

echo "== 2. a tiny ACT v1 checkpoint (random weights, seed 0)"
hrm-edge init --preset tiny --out "$OUT/tiny.pt" --seed 0

echo "== 3. export: step-mode ONNX bundle, parity ladder L1-L4 checked before it is written"
hrm-edge export "$OUT/tiny.pt" --out "$OUT/tiny-step" --act step

echo "== 4. solve 5 real ARC-AGI-1 evaluation tasks on PyTorch and on ONNX Runtime"
hrm-edge solve "$TASKS" --limit 5 --ckpt "$OUT/tiny.pt" --augment 4 --out "$OUT/submission_torch.json" --threads 1
hrm-edge solve "$TASKS" --limit 5 --bundle "$OUT/tiny-step" --augment 4 --out "$OUT/submission_ort.json" --threads 1
if cmp -s "$OUT/submission_torch.json" "$OUT/submission_ort.json"; then
  echo "submissions from PyTorch and ONNX Runtime are identical"
else
  echo "submissions differ between PyTorch and ONNX Runtime" >&2
  exit 1
fi

echo "== 5. compare every runtime against PyTorch on 10 tasks (TensorRT shows why it cannot run here)"
touch "$OUT/missing.engine"
# exit 4 = a row could not run (the TensorRT one, on purpose here); the table and files are written anyway
rc=0
hrm-edge compare "$TASKS" --limit 10 --ckpt "$OUT/tiny.pt" --bundle "$OUT/tiny-step" \
  --engine "$OUT/missing.engine" --augment 4 --threads 1 --out-dir "$OUT" || rc=$?
[ "$rc" -eq 4 ] || { echo "compare exited $rc, expected 4 (the TensorRT row cannot run here)"; exit 1; }
echo "== done: $OUT holds the checkpoint, bundle, submissions and compare.{json,md,png}"
