"""The CPU's instruction-set flags, and the one int8 fact they decide: are ONNX Runtime's u8 x s8 kernels exact here?

ONNX Runtime's x86 int8 matmuls (MLAS: MatMulInteger, QLinearMatMul, MatMulIntegerToFloat) multiply u8
activations by s8 weights. With VNNI (AVX512-VNNI, AVX-VNNI, AMX) each product lands in an int32
accumulator (`vpdpbusd`): exact. Without it (AVX2, AVX-512 without VNNI) MLAS uses `vpmaddubsw`, which adds
two adjacent u8*s8 products into a *saturating int16*: 255 * 127 * 2 = 64770 > 32767, so a large activation
times a large weight is silently clipped (ONNX Runtime's quantization docs name this; measured here:
MatMulInteger u8 x s8 off by up to half the result on an AVX2-only EPYC, exact with 7-bit weights,
u8 x u8 or s8 x s8). The benchmark host of 2026-11-25 had AVX-512 VNNI; the AVX2-only host of 2026-12-02
dropped every tiny-model int8 agreement test (0.55-0.74 of cells) with the same package versions.

So: dynamic int8 bundles keep weights in 7 bits (export/precision.to_int8, exact on every CPU) and the ORT
runner re-expresses int8-qdq activations as u8 only where `u8s8_exact()`.
"""

from __future__ import annotations

import platform
from functools import lru_cache

# flags (Linux /proc/cpuinfo spelling) of the int8 dot products that accumulate u8 x s8 in int32
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def parse_cpuinfo(text: str) -> tuple[str | None, set[str]]:
    """The model name and the flag set of the first processor in a /proc/cpuinfo text."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = (s.strip() for s in line.split(":", 1))
            fields.setdefault(k, v)
    return fields.get("model name"), set(fields.get("flags", "").split())


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str] | None:
    """This CPU's flags, or None where they cannot be read (no /proc/cpuinfo: macOS, Windows)."""
    try:
        with open("/proc/cpuinfo") as f:
            _, flags = parse_cpuinfo(f.read())
    except OSError:
        return None
    return frozenset(flags) if flags else None


def u8s8_saturates(machine: str, flags: set[str] | frozenset[str] | None) -> bool:
    """True where ONNX Runtime's u8 x s8 int8 kernels may clip: an x86 CPU without VNNI, or one whose flags are
    unknown (the safe answer: the alternatives are exact everywhere, only slower). Other architectures (ARM's
    MLAS kernels widen or use udot / sdot into int32) are exact."""
    if machine.lower() not in _X86:
        return False
    return flags is None or not any(f in flags for f in VNNI_FLAGS)


def u8s8_exact() -> bool:
    """Whether this machine's ONNX Runtime u8 x s8 int8 kernels are exact (see the module docstring)."""
    return not u8s8_saturates(platform.machine(), cpu_flags())


__all__ = ["VNNI_FLAGS", "parse_cpuinfo", "cpu_flags", "u8s8_saturates", "u8s8_exact"]
