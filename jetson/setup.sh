#!/usr/bin/env bash
# Native install on a Jetson (no container): a venv that sees JetPack's TensorRT, plus the Jetson wheels.
#   jetson/setup.sh [VENV_DIR]      (default .venv-jetson, created in the current folder)
#   jetson/setup.sh --print-pip     print the pip commands this Jetson would run, one per line, and stop
# Overrides (environment): JETSON_INDEX, TORCH_VERSION, ORT_VERSION, NUMPY_SPEC; NV_TEGRA_RELEASE (release file).
#
# TensorRT's Python bindings come with JetPack (python3-libnvinfer) for the system python3, so the venv is
# made with --system-site-packages. torch and onnxruntime-gpu come from the Jetson AI Lab index as the ONLY
# index (--index-url; its /+simple/ path proxies PyPI for their pure-Python dependencies): PyPI also serves a
# CPU-only aarch64 torch of the same version, and with PyPI beside it as an extra index pip picks that one.
# numpy stays 1.x on JetPack 6 (the index's torch is built against numpy 1.x). Then hrm-edge[jetson] comes
# from PyPI: the torch already installed satisfies it, and on aarch64 it asks for no CPU onnxruntime (which
# would overwrite onnxruntime-gpu's files). pycuda (the `jetson` extra) is compiled against /usr/local/cuda.
set -euo pipefail

print_only=0
if [[ ${1:-} == --print-pip ]]; then
  print_only=1
  shift
fi
release=${NV_TEGRA_RELEASE:-/etc/nv_tegra_release}
if [[ ! -r $release ]]; then
  echo "setup.sh: not a Jetson ($release not found); on a desktop GPU use: pip install 'hrm-edge[trt]'" >&2
  exit 2
fi
head=$(head -n1 "$release")
major=$(sed -n 's/^# R\([0-9]*\) (release).*/\1/p' <<<"$head")
rev=$(sed -n 's/.*REVISION: \([0-9.]*\).*/\1/p' <<<"$head")
[[ $print_only == 1 ]] || echo "L4T R${major}.${rev}"

extras=jetson
case "$major.$rev" in
  36.4*)  # JetPack 6.1 / 6.2: CUDA 12.6
    index=https://pypi.jetson-ai-lab.io/jp6/cu126/+simple/; torch=2.8.0; ort=1.23.0; numpy='numpy<2' ;;
  36.*)   # JetPack 6.0: CUDA 12.2 (check that the index still serves these versions; override if not)
    index=https://pypi.jetson-ai-lab.io/jp6/cu122/+simple/; torch=2.4.0; ort=1.19.0; numpy='numpy<2' ;;
  38.*|39.*)  # JetPack 7 (SBSA, CUDA 13): PyTorch's own cu130 aarch64 wheels; onnxruntime on the CPU
    index=https://download.pytorch.org/whl/cu130; torch=2.9.0; ort=''; numpy=''; extras=jetson,ort ;;
  35.*)
    echo "setup.sh: JetPack 5 (L4T R35) ships Python 3.8 and TensorRT 8.5 bindings for 3.8 only, while hrm-edge" \
         "needs Python >= 3.10: export TensorRT-8.5-clean bundles (opset 17) elsewhere and build them here with the" \
         "trtexec line build-engine prints, or move to JetPack 6" >&2
    exit 2 ;;
  *) echo "setup.sh: unknown L4T release R${major}.${rev}" >&2; exit 2 ;;
esac
index=${JETSON_INDEX:-$index}
torch=${TORCH_VERSION:-$torch}
ort=${ORT_VERSION:-$ort}
numpy=${NUMPY_SPEC-$numpy}
repo=$(cd "$(dirname "$0")/.." && pwd)

wheels=("torch==$torch")
[[ -n $ort ]] && wheels+=("onnxruntime-gpu==$ort")
[[ -n $numpy ]] && wheels+=("$numpy")
step1=(install --index-url "$index" "${wheels[@]}")
step2=(install -e "$repo[$extras]")
if [[ $print_only == 1 ]]; then
  printf '%q ' "${step1[@]}"; echo
  printf '%q ' "${step2[@]}"; echo
  exit 0
fi

# What pycuda's build and the venv need, each with the package that provides it.
missing=()
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=("python3-venv (python3 -m venv)")
python3 -c 'import os, sysconfig; raise SystemExit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || missing+=("python3-dev (Python.h, to compile pycuda)")
command -v g++ >/dev/null || missing+=("build-essential (a C++ compiler, to compile pycuda)")
[[ -f /usr/local/cuda/include/cuda.h ]] || missing+=("cuda-toolkit (/usr/local/cuda/include/cuda.h; nvidia-jetpack)")
if (( ${#missing[@]} )); then
  echo "setup.sh: missing: ${missing[*]}; install them (sudo apt install python3-venv python3-dev build-essential" \
       "nvidia-jetpack) and run again" >&2
  exit 2
fi
python3 -c 'import tensorrt' 2>/dev/null || {
  echo "setup.sh: system python3 cannot import tensorrt; install it: sudo apt install python3-libnvinfer" >&2
  exit 2
}
venv=${1:-.venv-jetson}
python3 -m venv --system-site-packages "$venv"
export PATH=/usr/local/cuda/bin:$PATH
"$venv/bin/pip" install --upgrade pip
"$venv/bin/pip" "${step1[@]}"
"$venv/bin/pip" "${step2[@]}"
"$venv/bin/hrm-edge" doctor
