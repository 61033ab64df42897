"""What Jetson this is: L4T / JetPack release, board model, nvpmodel power mode, jetson_clocks state.

Read from the files and tools JetPack installs (`/etc/nv_tegra_release`, the device-tree model,
`nvpmodel -q`, `jetson_clocks --show`); every reader returns None off a Jetson, so `doctor`,
`build-engine` and `bench` can record the fields everywhere and fill them where they exist.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

NV_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
DT_MODEL = Path("/proc/device-tree/model")

# L4T release -> JetPack (NVIDIA's JetPack archive pages); the longest matching prefix wins. r38 is Thor
# only (JetPack 7.0 = 38.2, 7.1 = 38.4); r39 (JetPack 7.2) runs on Orin and Thor. 39.2.2 for JetPack 7.2.2
# follows the numbering of 7.2 (39.2.0) and 7.2.1 (39.2.1, OE4T meta-tegra); not read from NVIDIA's notes.
_JETPACK = {"35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2", "35.5": "5.1.3", "35.6": "5.1.4",
            "36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
            "38.2": "7.0", "38.4": "7.1", "39.2": "7.2", "39.2.1": "7.2.1", "39.2.2": "7.2.2"}

# JetPack line -> (TensorRT it ships, CUDA, Python, boards, what hrm-edge does there). Sources: NVIDIA's
# JetPack archive pages (5.1.x, 6.x, 7.0, 7.1), OE4T meta-tegra's L4T R39.2.0 update (7.2: CUDA 13.2,
# TensorRT 10.16), the TensorRT 11.4 10.x -> 11.x migration guide (11.x: strongly typed only).
MATRIX = [
    ("5.1.x", "r35", "8.5.2", "11.4", "3.8", "Xavier, Orin",
     "no runner (Python 3.8): build-engine's trtexec line and TensorRT-8.5-clean bundles (opset 17)"),
    ("6.0", "r36.2-36.3", "8.6.2", "12.2", "3.10", "Orin", "supported: weakly typed builds"),
    ("6.1 / 6.2", "r36.4", "10.3", "12.6", "3.10", "Orin", "supported: weakly or --strongly-typed builds"),
    ("7.0 / 7.1", "r38.2 / r38.4", "10.13", "13.0", "3.12", "Thor", "supported: weakly or --strongly-typed builds"),
    ("7.2 / 7.2.1", "r39.2", "10.16", "13.2", "3.12", "Orin, Thor", "supported: weakly or --strongly-typed builds"),
    ("7.2.2+", "r39.2.2+", "11.4.1", "13.x", "3.12", "AGX Orin, Thor",
     "supported: strongly typed only (export --precision fp16 / int8-qdq)"),
]


_MATRIX_FROM = [(5,), (6, 0), (6, 1), (7, 0), (7, 2), (7, 2, 2)]  # first JetPack of each MATRIX row


def matrix_rows() -> list[dict[str, str]]:
    keys = ("jetpack", "l4t", "tensorrt", "cuda", "python", "boards", "hrm_edge")
    return [dict(zip(keys, row)) for row in MATRIX]


def matrix_for(jetpack: str | None) -> dict[str, str] | None:
    """The MATRIX row of a JetPack version ("6.2", "7.2.2", "6.0 DP"); None before JetPack 5."""
    nums = re.match(r"(\d+(?:\.\d+)*)", jetpack or "")
    if not nums:
        return None
    v = tuple(int(x) for x in nums.group(1).split("."))
    rows = [i for i, lo in enumerate(_MATRIX_FROM) if v >= lo]
    return matrix_rows()[rows[-1]] if rows else None


def parse_l4t(text: str) -> str | None:
    """'# R36 (release), REVISION: 4.3, ...' -> '36.4.3' (None when the line is not an L4T header)."""
    m = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{m.group(1)}.{m.group(2).rstrip('.')}" if m else None


def jetpack_for(l4t: str | None) -> str | None:
    if not l4t:
        return None
    best = max((k for k in _JETPACK if l4t == k or l4t.startswith(k + ".")), key=len, default=None)
    return _JETPACK[best] if best else None


def l4t_release(path: Path = NV_TEGRA_RELEASE) -> str | None:
    try:
        return parse_l4t(path.read_text(errors="replace").splitlines()[0])
    except (OSError, IndexError):
        return None


def board_model(path: Path = DT_MODEL) -> str | None:
    try:
        return path.read_bytes().rstrip(b"\0").decode(errors="replace").strip() or None
    except OSError:
        return None


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (p.stdout + p.stderr) if p.returncode == 0 else None


def parse_nvpmodel(text: str) -> str | None:
    """`nvpmodel -q` output -> 'MAXN (0)' / '15W (1)'."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None
    n = re.search(r"^\s*(\d+)\s*$", text[m.end():], re.M)
    return f"{m.group(1)} ({n.group(1)})" if n else m.group(1)


def nvpmodel_mode() -> str | None:
    out = _run(["nvpmodel", "-q"])
    return parse_nvpmodel(out) if out else None


_CPU = re.compile(r"^\s*cpu\d+:\s+(?:Online=(\d)\s+)?Governor=\S+\s+MinFreq=(\d+)\s+MaxFreq=(\d+)", re.M)


def parse_jetson_clocks(text: str) -> str | None:
    """`jetson_clocks --show` -> 'on' (pinned), 'off' (dynamic) or None (not an output of it).

    Pinned means: every ONLINE CPU core at MinFreq == MaxFreq, the GPU at MinFreq == MaxFreq, and the EMC
    (memory) clock overridden. EMC is never judged by MinFreq: jetson_clocks leaves it below the maximum
    and sets `FreqOverride=1` instead; older L4T prints no FreqOverride, and then the CPU and GPU decide.
    Offline cores (their limits are stale) and the DLA / PVA lines (MinFreq=0 even when pinned) are skipped.
    """
    cpus: list[tuple[int, int]] = []
    for m in _CPU.finditer(text):
        if m.group(1) != "0":
            cpus.append((int(m.group(2)), int(m.group(3))))
    gpu = re.search(r"^\s*GPU\s+MinFreq=(\d+)\s+MaxFreq=(\d+)", text, re.M)
    emc = re.search(r"^\s*EMC\s+MinFreq=\d+\s+MaxFreq=\d+\s+CurrentFreq=\d+(?:\s+FreqOverride=(\d))?", text, re.M)
    if not cpus and gpu is None:
        return None
    pinned = all(a == b for a, b in cpus)
    if gpu is not None:
        pinned = pinned and gpu.group(1) == gpu.group(2)
    if emc is not None and emc.group(1) is not None:
        pinned = pinned and emc.group(1) == "1"
    return "on" if pinned else "off"


def jetson_clocks_state() -> str | None:
    """'on' when jetson_clocks pinned the clocks, 'off', or None (unknown / not root)."""
    out = _run(["jetson_clocks", "--show"])
    return parse_jetson_clocks(out) if out else None


def jetson_facts() -> dict[str, Any]:
    """Everything above in one dict (values None where unknown); recorded with every Jetson result."""
    l4t = l4t_release()
    return {"l4t": l4t, "jetpack": jetpack_for(l4t), "board": board_model(), "nvpmodel": nvpmodel_mode(),
            "jetson_clocks": jetson_clocks_state()}


def is_jetson() -> bool:
    return l4t_release() is not None
