#!/usr/bin/env bash
# Native install on a Jetson (no container): a venv that sees JetPack's TensorRT, plus the Jetson wheels.
#   jetson/setup.sh [VENV_DIR]      (default .venv-jetson, created in the current folder)
# TensorRT's Python bindings come with JetPack (python3-libnvinfer) for the system python3, so the venv is
# made with --system-site-packages; torch and onnxruntime-gpu come from the Jetson AI Lab index matching
# the JetPack's CUDA; pycuda (the `jetson` extra) is compiled against /usr/local/cuda.
set -euo pipefail

release=/etc/nv_tegra_release
if [[ ! -r $release ]]; then
  echo "setup.sh: not a Jetson ($release not found); on a desktop GPU use: pip install 'hrm-edge[trt]'" >&2
  exit 2
fi
head=$(head -n1 "$release")
major=$(sed -n 's/^# R\([0-9]*\) (release).*/\1/p' <<<"$head")
rev=$(sed -n 's/.*REVISION: \([0-9.]*\).*/\1/p' <<<"$head")
echo "L4T R${major}.${rev}"

case "$major.$rev" in
  36.4*) index=https://pypi.jetson-ai-lab.dev/jp6/cu126; torch=2.5.0; ort=1.20.0 ;;  # JetPack 6.1 / 6.2
  36.*)  index=https://pypi.jetson-ai-lab.dev/jp6/cu122; torch=2.4.0; ort=1.19.0 ;;  # JetPack 6.0
  35.*)
    echo "setup.sh: JetPack 5 (L4T R35) ships Python 3.8 and TensorRT bindings for 3.8 only, while hrm-edge" \
         "needs Python >= 3.10; build engines and run on JetPack 6, or export here and run ONNX Runtime" >&2
    exit 2 ;;
  *) echo "setup.sh: unknown L4T release R${major}.${rev}" >&2; exit 2 ;;
esac

python3 -c 'import tensorrt' 2>/dev/null || {
  echo "setup.sh: system python3 cannot import tensorrt; install it: sudo apt install python3-libnvinfer" >&2
  exit 2
}
venv=${1:-.venv-jetson}
repo=$(cd "$(dirname "$0")/.." && pwd)
python3 -m venv --system-site-packages "$venv"
export PATH=/usr/local/cuda/bin:$PATH
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" install --extra-index-url "$index" "torch==$torch" "onnxruntime-gpu==$ort"
"$venv/bin/pip" install -e "$repo[jetson]"
"$venv/bin/hrm-edge" doctor
