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

# L4T release -> JetPack (NVIDIA's release notes); the longest matching prefix wins.
_JETPACK = {"35.1": "5.0.2", "35.2": "5.1", "35.3": "5.1.1", "35.4": "5.1.2", "35.5": "5.1.3", "35.6": "5.1.4",
            "36.2": "6.0 DP", "36.3": "6.0", "36.4": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1"}


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


def jetson_clocks_state() -> str | None:
    """'on' when jetson_clocks pinned the clocks (CPU min == max freq), 'off', or None (unknown / not root)."""
    out = _run(["jetson_clocks", "--show"])
    if not out:
        return None
    cpus = re.findall(r"MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq", out)
    if not cpus:
        return None
    return "on" if all(a == b for a, b in cpus) else "off"


def jetson_facts() -> dict[str, Any]:
    """Everything above in one dict (values None where unknown); recorded with every Jetson result."""
    l4t = l4t_release()
    return {"l4t": l4t, "jetpack": jetpack_for(l4t), "board": board_model(), "nvpmodel": nvpmodel_mode(),
            "jetson_clocks": jetson_clocks_state()}


def is_jetson() -> bool:
    return l4t_release() is not None
