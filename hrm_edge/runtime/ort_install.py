"""How ONNX Runtime gets installed, said once for every message that asks for it.

hrm-edge depends on no onnxruntime distribution directly: `onnxruntime` (CPU) and `onnxruntime-gpu` write the same
`onnxruntime/` folder, so a CPU package pulled in beside the GPU one overwrites it and the CUDA / TensorRT execution
providers vanish. The user picks one through an extra (pyproject.toml: `ort` or `gpu`; a Jetson takes onnxruntime-gpu
from the Jetson AI Lab index, jetson/setup.sh).
"""

from __future__ import annotations

ORT_INSTALL = "pip install 'hrm-edge[ort]' (CPU) or 'hrm-edge[gpu]' (NVIDIA GPU; on a Jetson: jetson/setup.sh)"


def require_onnxruntime(why: str) -> None:
    """Raise MissingDependencyError (one line with the install command) when onnxruntime cannot be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        from hrm_edge.errors import MissingDependencyError

        raise MissingDependencyError(f"{why} needs onnxruntime, which is not installed ({exc}): {ORT_INSTALL}") \
            from None


__all__ = ["ORT_INSTALL", "require_onnxruntime"]
