"""Option checks every command runs first, before loading a model or reading tasks.

Enum-like options stay plain strings in the signatures (an export profile may supply them, so
"not given" must stay distinguishable from a default), and are checked here with one message
shape: `--act must be one of step, unrolled, loop, got 'bogus'`. The tuples below are restated
from the rooms that act on them (export.onnx.ACT_MODES, export.precision.PRECISIONS,
export.trt_ops.TARGETS, export.onnx.MIN_OPSET/MAX_OPSET, model.act.HALT_MODES, solve.runners.RUNTIMES,
runtime.scheduler.SCHEDULES)
only so that `--help` and these checks need no torch/onnx import (a bad option fails in a fraction of
a second); tests/test_cli_help.py fails if they drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from hrm_edge.errors import HrmEdgeError

ACT_MODES = ("step", "unrolled", "loop")
PRECISIONS = ("fp32", "fp16", "int8", "int8-qdq")
TARGETS = ("trt-8.5", "trt-10", "ort")
HALT_MODES = ("max", "adaptive", "batch-mean")
RUNTIMES = ("torch", "onnxruntime", "tensorrt")
SCHEDULES = ("static", "continuous")
PUZZLE_DTYPES = ("fp16", "fp32")
TORCH_DTYPES = ("float32", "bfloat16", "trained")
TORCH_DTYPE_HELP = ("What the PyTorch model computes in: float32 (the edge runtimes' reference), bfloat16 (the "
                    "references' own bf16 forward, act-v1 and trm), or trained: the dtype the checkpoint was trained "
                    "in (`hrm-edge info` says which), to reproduce the references' own evaluation of a bf16 run.")
OPSET_RANGE = (13, 20)
THREADS_HELP = ("CPU threads one model call may use: torch's intra-op pool (process-wide) and each ONNX Runtime "
                "session's. Default: one per CPU core, waiting threads sleep instead of spinning (OMP_WAIT_POLICY="
                "PASSIVE unless set, ORT spinning off), so a CPU shared with other work does not stall "
                "(benchmarks/threads). Fewer threads leave cores to other processes.")


def check_choice(flag: str, value: str | None, choices: Sequence[str]) -> None:
    """Raise one HrmEdgeError unless `value` (when given) is one of `choices`."""
    if value is not None and value not in choices:
        raise HrmEdgeError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def check_min(flag: str, value: int | None, lowest: int) -> None:
    if value is not None and value < lowest:
        raise HrmEdgeError(f"{flag} must be >= {lowest}, got {value}")


def check_device(flag: str, value: str | None) -> None:
    """A torch device: cpu, cuda or cuda:N (whether it exists here is the runtime's question)."""
    if value is None:
        return
    head, _, index = value.partition(":")
    if head not in ("cpu", "cuda") or (index and not index.isdigit()) or (head == "cpu" and index):
        raise HrmEdgeError(f"{flag} must be cpu, cuda or cuda:N, got {value!r}")
