"""`hrm-edge doctor`: what this machine can run, each missing piece with the command that installs it.

Every probe is cheap and never raises: a missing module or tool is a row saying "missing" and how to
get it (the command differs on a Jetson, where torch / onnxruntime-gpu come from the Jetson AI Lab index and
TensorRT from JetPack). The rows a Jetson install gets wrong most often have their own checks:
- which onnxruntime build is active (`onnxruntime` or `onnxruntime-gpu`, both installed = the CPU package
  overwrote the GPU one's files) and which execution providers it really has;
- torch built against numpy 1.x running under numpy 2 (`torch.from_numpy` fails);
- the JetPack release, the TensorRT it ships, and what hrm-edge does there (`jetson_info.MATRIX`);
- what is verified on this CPU and what only on a device (`VERIFIED`).
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from hrm_edge.runtime.jetson_info import jetson_facts, matrix_for
from hrm_edge.runtime.ort_install import ORT_INSTALL

VERIFIED = ("On a CPU (the test suite): every TensorRT call against the real 8.6, 10.3 and 11.4 Python bindings "
            "(and 8.5 as modelled), the Jetson pip install resolved for aarch64 and the desktop [gpu] one for x86_64, "
            "sidecar / profile / clocks checks. "
            "Only on a device: engine builds, accuracy and speed (jetson/check.sh).")


def _dist_version(name: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def onnxruntime_build() -> tuple[str, str]:
    """('ok' | 'missing', what is installed): the two packages share one folder, so both present is broken."""
    cpu, gpu = _dist_version("onnxruntime"), _dist_version("onnxruntime-gpu")
    if cpu and gpu:
        return "missing", (f"both onnxruntime {cpu} (CPU) and onnxruntime-gpu {gpu} are installed: the CPU package "
                           "overwrote the GPU one's files")
    if gpu:
        return "ok", f"onnxruntime-gpu {gpu}"
    if cpu:
        return "ok", f"onnxruntime {cpu} (CPU build)"
    return "missing", "no onnxruntime distribution"


def numpy_abi(torch: Any) -> str | None:
    """Why torch cannot use this numpy (a torch built against numpy 1.x under numpy 2), or None."""
    import numpy as np

    try:
        torch.from_numpy(np.zeros(1, np.float32))
    except Exception as exc:  # RuntimeError: Numpy is not available
        return f"torch cannot use numpy {np.__version__}: {str(exc).splitlines()[0][:120]}"
    return None


def jetpack_row(jetpack: str | None) -> str:
    """The matrix line of this JetPack (TensorRT it ships, what hrm-edge does there)."""
    row = matrix_for(jetpack)
    return f"TensorRT {row['tensorrt']}, Python {row['python']}: {row['hrm_edge']}" if row else ""


@dataclass
class Check:
    name: str
    status: str  # "ok" | "missing" | "info"
    detail: str
    fix: str = ""


def _version(module: str) -> tuple[Any, str | None]:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # ImportError, or a broken install raising OSError & co.
        return None, str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
    return mod, None


def _mem_available() -> str:
    try:
        for line in open("/proc/meminfo", encoding="ascii"):
            if line.startswith("MemAvailable:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB available (host RAM, shared with the GPU on Jetson)"
    except OSError:
        pass
    return "unknown"


def _driver() -> str | None:
    if shutil.which("nvidia-smi"):
        try:
            p = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                               capture_output=True, text=True, timeout=10)
            if p.returncode == 0 and p.stdout.strip():
                return p.stdout.strip().splitlines()[0]
        except (OSError, subprocess.TimeoutExpired):
            pass
    for path in ("/proc/driver/nvidia/version",):
        if os.path.exists(path):
            return open(path, encoding="utf-8", errors="replace").readline().strip()
    return None


def run_checks() -> tuple[list[Check], dict[str, Any]]:
    """All rows, plus the Jetson facts dict (L4T, JetPack, board, nvpmodel, jetson_clocks)."""
    facts = jetson_facts()
    jetson = facts["l4t"] is not None
    rows = [Check("python", "ok", f"{platform.python_version()} ({platform.machine()})")]

    torch, err = _version("torch")
    if torch is None:
        rows.append(Check("torch", "missing", err or "", "NVIDIA's Jetson torch wheel (jetson/setup.sh)" if jetson
                          else "pip install torch"))
    else:
        cuda = torch.cuda.is_available()
        rows.append(Check("torch", "ok", f"{torch.__version__}, CUDA " + (
            f"{torch.version.cuda} on {torch.cuda.get_device_name(0)}" if cuda else "not available")))
        bad = numpy_abi(torch)
        if bad:
            rows.append(Check("numpy", "missing", bad, "pip install 'numpy<2' (the Jetson AI Lab JetPack 6 torch is "
                                                        "built against numpy 1.x)"))

    ort, err = _version("onnxruntime")
    build_status, build = onnxruntime_build()
    if ort is None:
        rows.append(Check("onnxruntime", "missing", err or "", "pip install onnxruntime-gpu from the Jetson AI Lab "
                          "index (jetson/setup.sh)" if jetson else ORT_INSTALL))
    else:
        providers = ", ".join(p.replace("ExecutionProvider", "") for p in ort.get_available_providers())
        fix = ""
        if build_status != "ok":
            fix = "pip uninstall -y onnxruntime onnxruntime-gpu; " + (
                "reinstall onnxruntime-gpu from the Jetson AI Lab index (jetson/setup.sh)" if jetson
                else "pip install 'hrm-edge[gpu]' (or 'hrm-edge[ort]' for the CPU build)")
        elif jetson and "CUDA" not in providers:
            build_status, fix = "missing", "the CPU onnxruntime on a Jetson: install onnxruntime-gpu (jetson/setup.sh)"
        rows.append(Check("onnxruntime", build_status, f"{build}; providers {providers}", fix))

    trt, err = _version("tensorrt")
    rows.append(Check("tensorrt", "ok", str(trt.__version__)) if trt is not None else Check(
        "tensorrt", "missing", err or "", "sudo apt install python3-libnvinfer (JetPack), and a venv with "
        "--system-site-packages" if jetson else "pip install 'hrm-edge[trt]'"))

    drv = _driver()
    rows.append(Check("CUDA driver", "ok" if drv or jetson else "missing",
                      drv or ("Jetson integrated GPU (driver is part of L4T)" if jetson else "no NVIDIA driver found"),
                      "" if drv or jetson else "an NVIDIA GPU and driver are needed for TensorRT"))

    pycuda, err = _version("pycuda.driver")
    rows.append(Check("pycuda", "ok", str(importlib.import_module("pycuda").VERSION_TEXT)) if pycuda is not None
                else Check("pycuda", "missing", err or "", "pip install 'hrm-edge[jetson]'" if jetson
                           else "pip install 'hrm-edge[trt]'"))
    cp, err = _version("cuda")
    rows.append(Check("cuda-python", "ok" if cp is not None else "info",
                      getattr(cp, "__version__", "installed") if cp is not None else "not installed (optional)"))

    rows.append(Check("L4T / JetPack", "ok" if jetson else "info",
                      f"L4T {facts['l4t']} = JetPack {facts['jetpack'] or '?'}"
                      + (f" ({jetpack_row(facts['jetpack'])})" if jetpack_row(facts["jetpack"]) else "")
                      if jetson else "not a Jetson"))
    if jetson:
        rows.append(Check("board", "ok", facts["board"] or "unknown"))
        rows.append(Check("nvpmodel", "ok" if facts["nvpmodel"] else "info", facts["nvpmodel"] or "unknown",
                          "" if facts["nvpmodel"] else "sudo nvpmodel -q"))
        rows.append(Check("jetson_clocks", "ok" if facts["jetson_clocks"] else "info",
                          facts["jetson_clocks"] or "unknown (needs root)", "sudo jetson/clocks.sh max"))
        rows.append(Check("tegrastats", "ok" if shutil.which("tegrastats") else "missing",
                          shutil.which("tegrastats") or "not on PATH", "" if shutil.which("tegrastats")
                          else "part of L4T (nvidia-l4t-tools)"))
    rows.append(Check("memory", "info", _mem_available()))
    rows.append(Check("verified", "info", VERIFIED))
    return rows, facts


def report(rows: list[Check], facts: dict[str, Any]) -> dict[str, Any]:
    """The `--json` document."""
    from hrm_edge.runtime.jetson_info import matrix_rows

    return {"checks": [asdict(r) for r in rows], "jetson": facts, "jetpack_matrix": matrix_rows(),
            "can_run": {"torch": _ok(rows, "torch"), "onnxruntime": _ok(rows, "onnxruntime"),
                        "tensorrt": _ok(rows, "tensorrt") and _ok(rows, "pycuda") and _ok(rows, "CUDA driver")}}


def _ok(rows: list[Check], name: str) -> bool:
    return any(r.name == name and r.status == "ok" for r in rows)
