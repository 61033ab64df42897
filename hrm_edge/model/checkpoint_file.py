"""Reading a checkpoint file, and saying in one line what is wrong when it is not one.

torch.load's own errors do not help a user: an empty file is `EOFError`, a text file renamed .pt
is `KeyError: '101'` (its first byte), a truncated file is a miniz paragraph. Before and after
torch.load this module looks at the bytes and names what it sees: empty, text, another format,
truncated (with the size the JSON sidecar recorded, when there is one), or PyTorch's own first
sentence. Every message is one line that names the file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from hrm_edge.errors import HrmEdgeError, first_sentence

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"  # pickle protocol 2+ (torch's legacy, non-zip format)
_OTHER_FORMATS = (  # (magic at offset 0, what it is)
    (b"\x89PNG", "a PNG image"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"\x93NUMPY", "a NumPy .npy array"),
)


def sidecar_path(path: Path) -> Path:
    """The JSON sidecar hrm-edge writes beside a native checkpoint: `<path minus suffix>.json`."""
    return path.with_suffix(".json") if path.suffix else Path(str(path) + ".json")


def recorded_size(path: Path) -> int | None:
    """The byte size the native sidecar recorded for this checkpoint, if there is a readable one."""
    side = sidecar_path(path)
    if side == path or not side.is_file():
        return None
    try:
        size = json.loads(side.read_text(encoding="utf-8")).get("bytes")
    except (OSError, ValueError, AttributeError):
        return None
    return size if isinstance(size, int) else None


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\r\n" for c in text)


def sniff(path: Path) -> None:
    """Raise one HrmEdgeError if the bytes of `path` cannot be a PyTorch checkpoint (before torch.load)."""
    size = path.stat().st_size
    if size == 0:
        raise HrmEdgeError("empty file (0 bytes); expected a PyTorch checkpoint", path)
    with open(path, "rb") as f:
        head = f.read(64)
    expected = recorded_size(path)
    if expected is not None and size < expected:
        raise HrmEdgeError(f"truncated: {size:,} of {expected:,} bytes (the size recorded in "
                           f"{sidecar_path(path).name}); copy or download it again", path)
    if head.startswith(ZIP_MAGIC):
        if not zipfile.is_zipfile(path):
            raise HrmEdgeError(f"truncated or corrupt: a zip archive ({size:,} bytes) without the central directory a "
                               "complete PyTorch checkpoint ends with; copy or download it again", path)
        return
    if head.startswith(PICKLE_MAGIC):
        return  # torch's legacy format; torch.load judges it
    for magic, what in _OTHER_FORMATS:
        if head.startswith(magic):
            raise HrmEdgeError(f"not a PyTorch checkpoint: it is {what}", path)
    if len(head) >= 10 and head[8:10] == b'{"':
        raise HrmEdgeError("not a PyTorch checkpoint: it looks like a safetensors file", path)
    if _looks_like_text(head):
        start = " ".join(head.decode("utf-8").split())[:30]
        raise HrmEdgeError(f"not a PyTorch checkpoint: it starts with text ({start!r})", path)
    raise HrmEdgeError(f"not a PyTorch checkpoint: unrecognised content (first bytes {head[:4].hex(' ')})", path)


def read_torch_file(path: Path) -> Any:
    """torch.load (weights only) with every failure turned into one line naming the file."""
    import torch

    if not path.exists():
        raise HrmEdgeError("no such checkpoint file", path)
    if path.is_dir():
        raise HrmEdgeError("is a folder; give the checkpoint file inside it", path)
    sniff(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        text = str(exc)
        if "Weights only load failed" in text:
            raise HrmEdgeError("holds Python objects other than tensors and plain containers (refusing to "
                               "unpickle code)", path) from None
        if isinstance(exc, EOFError) or "central directory" in text:
            raise HrmEdgeError(f"truncated: it ends early ({path.stat().st_size:,} bytes); copy or download it "
                               "again", path) from None
        reason = first_sentence(text) or type(exc).__name__
        raise HrmEdgeError(f"not a readable PyTorch checkpoint: {reason}", path) from None
