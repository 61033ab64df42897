"""Grid <-> token sequence in the HRM reference layout.

A grid of h x w colours is laid row-major into the top-left of a `canvas` x `canvas` board
(optionally shifted by an offset, the reference's translation augmentation):

- colours 0..9 become tokens 2..11 (`COLOR_OFFSET`), empty cells are PAD (0);
- EOS (1) sits in column w of every grid row and in row h under every grid column, so the
  model can say where the grid ends; the corner cell (h, w) stays PAD, exactly as the
  reference builder writes it, and an EOS that would fall off the board is dropped.

Decoding is the other way round and must survive garbage: a predicted sequence that does not
describe a grid is reported as undecodable (with the reason), never raised on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PAD = 0
EOS = 1
COLOR_OFFSET = 2
NUM_COLORS = 10
VOCAB_SIZE = COLOR_OFFSET + NUM_COLORS  # 12
DEFAULT_CANVAS = 30

__all__ = [
    "PAD",
    "EOS",
    "COLOR_OFFSET",
    "NUM_COLORS",
    "VOCAB_SIZE",
    "DEFAULT_CANVAS",
    "Decoded",
    "encode_grid",
    "encode_pair",
    "encode_batch",
    "grid_layout",
    "decode_grid",
    "decode_grid_checked",
    "decode_batch",
    "crop_reference",
]


def grid_layout(h: int, w: int, canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell and EOS positions of an h x w grid on a (canvas+1)-wide scratch board.

    Returns `(cells, eos)`: flat indices into a (canvas+1) x (canvas+1) board for the h*w
    cells in row-major order and for the h + w EOS tokens. The extra row and column let
    every EOS be written unconditionally; cropping the board to canvas x canvas then drops
    the ones the reference drops (a grid touching the right or bottom edge). Adding
    `r0 * (canvas + 1) + c0` to both shifts the grid to offset (r0, c0).
    """
    stride = canvas + 1
    rows = np.arange(h, dtype=np.int64)
    cols = np.arange(w, dtype=np.int64)
    cells = (rows[:, None] * stride + cols[None, :]).ravel()
    eos = np.concatenate([rows * stride + w, h * stride + cols])
    return cells, eos


def _check_fits(h: int, w: int, offset: tuple[int, int], canvas: int) -> None:
    r0, c0 = offset
    if h < 1 or w < 1:
        raise ValueError(f"cannot encode an empty {h}x{w} grid")
    if r0 < 0 or c0 < 0 or r0 + h > canvas or c0 + w > canvas:
        raise ValueError(f"a {h}x{w} grid at offset ({r0}, {c0}) does not fit the {canvas}x{canvas} canvas")


def encode_grid(
    grid: np.ndarray, canvas: int = DEFAULT_CANVAS, offset: tuple[int, int] = (0, 0), dtype=np.uint8
) -> np.ndarray:
    """One grid -> a (canvas*canvas,) token sequence (uint8 like the reference's arrays)."""
    return encode_batch([grid], canvas, offsets=[offset], dtype=dtype)[0]


def encode_pair(
    inp: np.ndarray,
    out: np.ndarray,
    canvas: int = DEFAULT_CANVAS,
    offset: tuple[int, int] = (0, 0),
    dtype=np.uint8,
) -> tuple[np.ndarray, np.ndarray]:
    """An (input, output) pair -> (input tokens, label tokens), both shifted by the same offset.

    The reference translates a pair as one unit so input and answer stay aligned; the offset
    must fit the larger of the two grids.
    """
    seqs = encode_batch([inp, out], canvas, offsets=[offset, offset], dtype=dtype)
    return seqs[0], seqs[1]


def encode_batch(
    grids: Sequence[np.ndarray],
    canvas: int = DEFAULT_CANVAS,
    offsets: Sequence[tuple[int, int]] | np.ndarray | None = None,
    dtype=np.uint8,
) -> np.ndarray:
    """Many grids of any shapes -> (n, canvas*canvas) tokens in one scatter, no per-cell Python.

    Grids must hold colours 0..9 (validated tasks do); shapes may differ. `offsets` is one
    (row, col) per grid (default all at the top-left).
    """
    n = len(grids)
    stride = canvas + 1
    board = np.zeros((n, stride * stride), dtype=dtype)
    if n == 0:
        return board[:, :0].reshape(0, canvas * canvas)
    offs = np.zeros((n, 2), dtype=np.int64) if offsets is None else np.asarray(offsets, dtype=np.int64)
    if offs.shape != (n, 2):
        raise ValueError(f"offsets must have shape ({n}, 2), got {offs.shape}")
    cell_idx, cell_val, eos_idx = [], [], []
    for i, g in enumerate(grids):
        g = np.asarray(g)
        if g.ndim != 2:
            raise ValueError(f"grid {i} has {g.ndim} dimensions, expected 2")
        h, w = g.shape
        _check_fits(h, w, (int(offs[i, 0]), int(offs[i, 1])), canvas)
        cells, eos = grid_layout(h, w, canvas)
        base = i * stride * stride + offs[i, 0] * stride + offs[i, 1]
        cell_idx.append(cells + base)
        cell_val.append(g.ravel())
        eos_idx.append(eos + base)
    values = np.concatenate(cell_val)
    if values.size and (values.min() < 0 or values.max() >= NUM_COLORS):
        raise ValueError("grid colours must be in 0..9")
    flat = board.reshape(-1)
    flat[np.concatenate(cell_idx)] = values.astype(dtype) + COLOR_OFFSET
    flat[np.concatenate(eos_idx)] = EOS
    return board.reshape(n, stride, stride)[:, :canvas, :canvas].reshape(n, canvas * canvas)


@dataclass(frozen=True)
class Decoded:
    """Result of decoding one sequence: the grid, or None and why not."""

    grid: np.ndarray | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.grid is not None


def _find_origin(board: np.ndarray) -> tuple[int, int] | None:
    """Top-left of a translated grid: the first row and column holding anything but PAD."""
    rows = np.flatnonzero((board != PAD).any(axis=1))
    cols = np.flatnonzero((board != PAD).any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(cols[0])


def decode_grid_checked(
    seq: np.ndarray,
    canvas: int = DEFAULT_CANVAS,
    *,
    offset: tuple[int, int] | str = (0, 0),
    strict: bool = False,
) -> Decoded:
    """Find the EOS-bounded grid in a (predicted) sequence; say why when there is none.

    The grid starts at `offset` ("auto": the first non-PAD row and column, for translated
    sequences). Its width is the run of colour tokens along its first row, which must end in
    EOS (or the canvas edge); its height is the run of rows that are all colours over that
    width and end in EOS; the row below must be all EOS over that width (or the canvas edge).
    With `strict`, every other token must be PAD, i.e. the sequence is exactly what
    `encode_grid` writes.
    """
    arr = np.asarray(seq)
    if arr.size != canvas * canvas:
        return Decoded(None, f"sequence has {arr.size} tokens, expected {canvas * canvas}")
    if arr.dtype.kind not in "iu":
        return Decoded(None, f"sequence has dtype {arr.dtype}, expected integer tokens")
    board = arr.reshape(canvas, canvas).astype(np.int64, copy=False)
    bad = (board < 0) | (board >= VOCAB_SIZE)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        return Decoded(None, f"token {board[r, c]} at ({r}, {c}) is outside the vocabulary 0..{VOCAB_SIZE - 1}")
    if isinstance(offset, str):
        if offset != "auto":
            return Decoded(None, f"unknown offset mode {offset!r}")
        origin = _find_origin(board)
        if origin is None:
            return Decoded(None, "sequence is all PAD")
    else:
        origin = (int(offset[0]), int(offset[1]))
    r0, c0 = origin
    if not (0 <= r0 < canvas and 0 <= c0 < canvas):
        return Decoded(None, f"offset {origin} is outside the canvas")
    sub = board[r0:, c0:]
    is_color = sub >= COLOR_OFFSET
    first_row = is_color[0]
    w = int(np.argmin(first_row)) if not first_row.all() else first_row.size
    if w == 0:
        return Decoded(None, f"no colour at the grid origin ({r0}, {c0})")
    if w < sub.shape[1] and sub[0, w] != EOS:
        return Decoded(None, f"row 0 ends at column {w} without EOS (token {sub[0, w]})")
    row_ok = is_color[:, :w].all(axis=1)
    if w < sub.shape[1]:
        row_ok &= sub[:, w] == EOS
    h = int(np.argmin(row_ok)) if not row_ok.all() else row_ok.size
    if h < sub.shape[0] and not (sub[h, :w] == EOS).all():
        return Decoded(None, f"row {h} is neither a full grid row ending in EOS nor the EOS row (ragged grid)")
    grid = (sub[:h, :w] - COLOR_OFFSET).astype(np.uint8)
    if strict:
        expected = encode_grid(grid, canvas, offset=origin)
        if not np.array_equal(expected, arr.reshape(-1)):
            return Decoded(None, "tokens outside the grid and its EOS frame are not PAD")
    return Decoded(grid)


def decode_grid(
    seq: np.ndarray,
    canvas: int = DEFAULT_CANVAS,
    *,
    offset: tuple[int, int] | str = (0, 0),
    strict: bool = False,
) -> np.ndarray | None:
    """Like `decode_grid_checked` but just the grid, or None when undecodable."""
    return decode_grid_checked(seq, canvas, offset=offset, strict=strict).grid


def decode_batch(
    seqs: np.ndarray,
    canvas: int = DEFAULT_CANVAS,
    *,
    offset: tuple[int, int] | str = (0, 0),
    strict: bool = False,
) -> list[Decoded]:
    """Decode every row of an (n, canvas*canvas) array (e.g. a batch of argmax predictions)."""
    arr = np.asarray(seqs)
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim > 1 else arr.reshape(1, -1)
    return [decode_grid_checked(row, canvas, offset=offset, strict=strict) for row in arr]


def crop_reference(seq: np.ndarray, canvas: int = DEFAULT_CANVAS) -> np.ndarray:
    """The reference evaluation's lenient crop: the largest top-left rectangle of colours.

    Unlike `decode_grid` it never refuses (an empty 0x0 grid when the corner is not a colour);
    it is here so hrm-edge can score predictions exactly as the reference notebook does.
    """
    board = np.asarray(seq).reshape(canvas, canvas).astype(np.int64)
    is_color = (board >= COLOR_OFFSET) & (board < VOCAB_SIZE)
    best, best_shape = 0, (0, 0)
    width = canvas
    for r in range(canvas):
        row = is_color[r, :width]
        width = int(np.argmin(row)) if not row.all() else width
        if (r + 1) * width > best:
            best, best_shape = (r + 1) * width, (r + 1, width)
        if width == 0:
            break
    h, w = best_shape
    return (board[:h, :w] - COLOR_OFFSET).astype(np.uint8)
