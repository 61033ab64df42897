#!/usr/bin/env bash
# The whole device path in one command, on any machine with an NVIDIA GPU, TensorRT and pycuda (a Jetson or a
# desktop GPU), offline, in minutes:
#   jetson/check.sh [OUT_DIR] [TASKS]     (default OUT_DIR device_check; TASKS = demo tasks solved, default 20)
# 1. hrm-edge doctor --json
# 2. the shipped demo model (hrm_edge/assets/demo) exported fp32 and int8-qdq (hrm-edge demo), and fp16; on
#    TensorRT >= 10 also int8-qdq at opset 19 (int8 with an fp16 body), built strongly typed
# 3. build-engine for each (fp32: TF32 off; fp16 and int8 as this TensorRT types them), one timing cache
# 4. compare: PyTorch vs ONNX Runtime vs the TensorRT engines (grids = torch, steps = torch)
# 5. bench: the engines with and without CUDA graphs
# 6. OUT_DIR/report.json + report.md: versions, board, every row, and the checks that must hold
#    (fp32 TensorRT: every grid and halting step equal to PyTorch's; every engine ran)
# Exit 0 when every check holds, 1 when one does not, 2 when this machine cannot run the path (one line why).
set -euo pipefail

out=${1:-device_check}
tasks=${2:-20}
hrm=${HRM_EDGE:-hrm-edge}
py=${PYTHON:-python3}

why=$("$py" - <<'EOF' 2>&1
import shutil
try:
    import tensorrt
except Exception as exc:
    raise SystemExit(f"TensorRT is not importable ({str(exc).splitlines()[0][:100]})")
try:
    import pycuda.driver as cuda
    cuda.init()
    if cuda.Device.count() < 1:
        raise RuntimeError("no CUDA device")
except Exception as exc:
    raise SystemExit(f"pycuda cannot reach a CUDA device ({str(exc).splitlines()[0][:100]})")
EOF
) || {
  echo "check.sh: no NVIDIA GPU with TensorRT and pycuda here: ${why##*$'\n'}" >&2
  exit 2
}
command -v "$hrm" >/dev/null || { echo "check.sh: $hrm is not on PATH (pip install -e '.[jetson]' or '.[trt]')" >&2; exit 2; }
if [[ -e $out ]]; then
  echo "check.sh: $out exists; give another OUT_DIR or remove it" >&2
  exit 2
fi
mkdir -p "$out"
log() { echo "[check $(date +%H:%M:%S)] $*"; }
t0=$SECONDS

log "doctor"
"$hrm" doctor --json >"$out/doctor.json"

log "demo model: export fp32 + int8-qdq, solve $tasks tasks on PyTorch and ONNX Runtime"
"$hrm" demo --tasks "$tasks" --out "$out/demo" >"$out/demo.log" 2>&1
log "export fp16"
"$hrm" export "$out/demo/model.pt" --precision fp16 --out "$out/demo/model-step-fp16" >"$out/export_fp16.log" 2>&1

cache="$out/timing.cache"
build() {  # NAME BUNDLE FLAGS...
  local name=$1 bundle=$2
  shift 2
  log "build-engine $name"
  "$hrm" build-engine "$bundle" "$@" --max-batch 32 --timing-cache "$cache" --out "$out/$name.engine" \
    >"$out/build_$name.log" 2>&1
}
build fp32 "$out/demo/model-step"
build fp16 "$out/demo/model-step-fp16" --fp16
build int8 "$out/demo/model-step-int8-qdq" --int8
engines=(--engine "$out/fp32.engine" --engine "$out/fp16.engine" --engine "$out/int8.engine")
trt_major=$("$py" -c 'import tensorrt; print(tensorrt.__version__.split(".")[0])')
if (( trt_major >= 10 )); then  # opset 19: fp16 scales, so everything outside the Q/DQ pairs is fp16
  log "export int8-qdq, opset 19 (fp16 body)"
  "$hrm" export "$out/demo/model.pt" --precision int8-qdq --opset 19 --out "$out/demo/model-step-int8-qdq-fp16" \
    >"$out/export_int8_fp16.log" 2>&1
  strong=()
  (( trt_major == 10 )) && strong=(--strongly-typed)  # 11.x is strongly typed only
  build int8fp16 "$out/demo/model-step-int8-qdq-fp16" --int8 "${strong[@]}"
  engines+=(--engine "$out/int8fp16.engine")
fi
echo $(( ${#engines[@]} / 2 )) >"$out/engines.count"
# the engines live outside their bundles: their sidecars name the bundle they were built from

log "compare PyTorch / ONNX Runtime / TensorRT"
"$hrm" compare "$out/demo/tasks.json" --ckpt "$out/demo/model.pt" --bundle "$out/demo/model-step" "${engines[@]}" \
  --augment 8 --batch 32 --out-dir "$out/compare" >"$out/compare.log" 2>&1
log "bench (plain, then CUDA graphs)"
"$hrm" bench "$out/demo/tasks.json" "${engines[@]}" --batch 32 --puzzles 256 --out "$out/bench.json" \
  >"$out/bench.log" 2>&1
"$hrm" bench "$out/demo/tasks.json" "${engines[@]}" --batch 32 --puzzles 256 --cuda-graph \
  --out "$out/bench_cuda_graph.json" >"$out/bench_cuda_graph.log" 2>&1

log "report"
"$py" - "$out" "$((SECONDS - t0))" <<'EOF'
import json, sys
from pathlib import Path

out, seconds = Path(sys.argv[1]), int(sys.argv[2])
doctor = json.loads((out / "doctor.json").read_text())
compare = json.loads((out / "compare" / "compare.json").read_text())
bench = {k: json.loads((out / f).read_text()) for k, f in (("plain", "bench.json"), ("cuda_graph", "bench_cuda_graph.json"))}
checks = {c["name"]: c["detail"] for c in doctor["checks"]}
rows = compare.get("rows", [])
n_engines = int((out / "engines.count").read_text())
trt = [r for r in rows if r.get("kind") == "tensorrt"]
fp32 = [r for r in trt if "fp32" in r.get("label", "")]
must = {
    "every TensorRT engine ran": len(trt) == n_engines and all(r.get("status") == "ok" for r in trt),
    "fp32 TensorRT grids = torch 100%": bool(fp32) and fp32[0].get("grid_match_pct") == 100.0,
    "fp32 TensorRT steps = torch 100%": bool(fp32) and fp32[0].get("steps_match_pct") == 100.0,
    "bench ran every engine, plain and CUDA graphs": all(
        len(b.get("results", [])) == n_engines and all(x.get("status", "ok") == "ok" for x in b["results"])
        for b in bench.values()),
}
report = {"seconds": seconds, "machine": {k: checks.get(k) for k in ("python", "torch", "onnxruntime", "tensorrt",
                                                                     "pycuda", "CUDA driver", "L4T / JetPack",
                                                                     "board")},
          "jetson": doctor.get("jetson"), "checks": must, "compare": rows, "bench": bench}
(out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
md = ["# hrm-edge device check", "", f"{seconds} s; " + "; ".join(f"{k}: {v}" for k, v in report["machine"].items() if v),
      "", "| check | result |", "|---|---|"] + [f"| {k} | {'ok' if v else 'FAILED'} |" for k, v in must.items()]
md += ["", "| runtime | status | grids = torch | steps = torch | pass@2 |", "|---|---|---|---|---|"]
md += [f"| {r.get('label')} | {r.get('status')} | {r.get('grid_match_pct')} | {r.get('steps_match_pct')} | "
       f"{r.get('pass2')} |" for r in rows]
for name, b in bench.items():
    md += ["", f"bench ({name}):", ""] + [f"- {x.get('runtime')}: {json.dumps(x.get('latency', x.get('reason')))}"
                                          for x in b.get("results", [])]
(out / "report.md").write_text("\n".join(md) + "\n")
print("\n".join(md))
sys.exit(0 if all(must.values()) else 1)
EOF
