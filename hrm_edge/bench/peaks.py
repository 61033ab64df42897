"""What this machine can do: measured matmul peaks (fp32, bf16, int8) and the machine's description.

A benchmark figure means little without the ceiling it runs under, so `bench` measures the
ceilings in the same run, with the same thread count: one large square matmul per precision and
library, repeated, the best repeat kept (a peak, not a typical figure). int8 counts 2 ops per
multiply-add like the float rows (GOP/s). A precision the CPU or library lacks is reported as
absent with the reason, never estimated.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hrm_edge.runtime.cpu_isa import parse_cpuinfo, u8s8_saturates

DEFAULT_N = 1536  # 7.2 GFLOP per product: ~40 ms at the fp32 peak of 2 cores, long enough to time


def _best_rate(fn: Callable[[], Any], flops: float, repeats: int, min_seconds: float = 0.3) -> float:
    """Best FLOP/s over `repeats` timed calls (after one warm-up), at least `min_seconds` in all."""
    fn()
    best, spent, n = 0.0, 0.0, 0
    while n < repeats or spent < min_seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        spent += dt
        n += 1
        best = max(best, flops / dt)
        if n >= 4 * repeats:
            break
    return best


def torch_peaks(n: int = DEFAULT_N, repeats: int = 5) -> dict[str, Any]:
    """torch fp32 / bf16 matmul and int8 `_int_mm` (int32 accumulate), in GFLOP/s (GOP/s for int8)."""
    import torch

    flops = 2.0 * n ** 3
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    out: dict[str, Any] = {}
    with torch.inference_mode():
        out["fp32"] = _best_rate(lambda: a @ b, flops, repeats) / 1e9
        try:
            ab, bb = a.bfloat16(), b.bfloat16()
            out["bf16"] = _best_rate(lambda: ab @ bb, flops, repeats) / 1e9
        except RuntimeError as exc:  # pragma: no cover - CPUs without bf16 support
            out["bf16"] = None
            out["bf16_reason"] = str(exc).splitlines()[0]
        try:
            ai = torch.randint(-127, 128, (n, n), dtype=torch.int8, generator=g)
            bi = torch.randint(-127, 128, (n, n), dtype=torch.int8, generator=g)
            out["int8"] = _best_rate(lambda: torch._int_mm(ai, bi), flops, repeats) / 1e9
        except (RuntimeError, AttributeError) as exc:  # pragma: no cover
            out["int8"] = None
            out["int8_reason"] = str(exc).splitlines()[0]
    return out


def ort_peaks(n: int = DEFAULT_N, repeats: int = 5, threads: int | None = None) -> dict[str, Any]:
    """ONNX Runtime CPU MatMul (fp32) and MatMulInteger (u8 activations x s8 weights), constant B."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    flops = 2.0 * n ** 3

    def session(op: str, a_type: int, b: np.ndarray, out_type: int) -> Any:
        node = helper.make_node(op, ["A", "B"], ["Y"])
        graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("A", a_type, [n, n])],
                                  [helper.make_tensor_value_info("Y", out_type, [n, n])],
                                  initializer=[numpy_helper.from_array(b, "B")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    out: dict[str, Any] = {}
    s32 = session("MatMul", TensorProto.FLOAT, rng.standard_normal((n, n), dtype=np.float32), TensorProto.FLOAT)
    a32 = rng.standard_normal((n, n), dtype=np.float32)
    out["fp32"] = _best_rate(lambda: s32.run(None, {"A": a32}), flops, repeats) / 1e9
    s8 = session("MatMulInteger", TensorProto.UINT8, rng.integers(-127, 128, (n, n), dtype=np.int8), TensorProto.INT32)
    a8 = rng.integers(0, 256, (n, n), dtype=np.uint8)
    out["int8"] = _best_rate(lambda: s8.run(None, {"A": a8}), flops, repeats) / 1e9
    return out


def measure_peaks(threads: int | None = None, n: int = DEFAULT_N, repeats: int = 5) -> dict[str, Any]:
    """Matmul peaks of torch and ONNX Runtime with `threads` intra-op threads (GFLOP/s, GOP/s for int8)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    res: dict[str, Any] = {"n": n, "threads": torch.get_num_threads(), "torch": torch_peaks(n, repeats)}
    try:
        res["onnxruntime"] = ort_peaks(n, repeats, threads)
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        res["onnxruntime"] = {"reason": str(exc)}
    return res


def cpu_info() -> dict[str, Any]:
    """CPU model, cores and the ISA flags that decide which kernels run (AVX-512, VNNI, bf16, AMX)."""
    info: dict[str, Any] = {"machine": platform.machine(), "cpus": os.cpu_count(), "model": platform.processor()}
    try:
        with open("/proc/cpuinfo") as f:
            model, flags = parse_cpuinfo(f.read())
    except OSError:
        return info
    info["model"] = model or info["model"]
    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16",
              "amx_int8", "f16c")
    info["flags"] = [f for f in wanted if f in flags]
    info["ort_u8s8_exact"] = not u8s8_saturates(info["machine"], flags)  # runtime/cpu_isa.py: int8 kernels clip?
    return info


def machine_info() -> dict[str, Any]:
    """Everything a benchmark figure depends on: CPU, load, and library versions and threads."""
    import torch

    info: dict[str, Any] = {"hostname": platform.node(), "platform": platform.platform(),
                            "python": platform.python_version(), "cpu": cpu_info(), "torch": torch.__version__,
                            "torch_threads": torch.get_num_threads()}
    try:
        info["load_avg"] = list(os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    for mod in ("onnxruntime", "onnx", "numpy"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


__all__ = ["measure_peaks", "torch_peaks", "ort_peaks", "cpu_info", "machine_info"]
