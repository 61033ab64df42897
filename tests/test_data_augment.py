"""Augmentations: reference conventions, exact inverses on every real ARC grid, task-wide application."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
import pytest

from hrm_edge.data.arc import ArcPair, ArcTask, load_tasks
from hrm_edge.data.augment import (
    DIHEDRAL_INVERSE,
    Augmentation,
    dihedral,
    dihedral_index,
    inverse_dihedral,
    random_augmentations,
    random_colors,
    random_offset,
)
from hrm_edge.data.tokens import decode_grid


@lru_cache(maxsize=1)
def grids_by_shape() -> dict[tuple[int, int], np.ndarray]:
    """Every grid of ARC-AGI-1 and ARC-AGI-2, stacked by shape so transforms run batched."""
    groups: dict[tuple[int, int], list[np.ndarray]] = defaultdict(list)
    for name in ("arc-agi-1", "arc-agi-2"):
        for task in load_tasks(name).tasks:
            for g in task.grids():
                groups[g.shape].append(g)
    return {s: np.stack(gs) for s, gs in groups.items()}


def test_reference_dihedral_order() -> None:
    g = np.arange(6).reshape(2, 3)
    expected = [
        g,
        np.rot90(g, 1),
        np.rot90(g, 2),
        np.rot90(g, 3),
        np.fliplr(g),
        np.flipud(g),
        g.T,
        np.fliplr(np.rot90(g, 1)),
    ]
    for k, e in enumerate(expected):
        np.testing.assert_array_equal(dihedral(g, k), e)
    assert DIHEDRAL_INVERSE == (0, 3, 2, 1, 4, 5, 6, 7)
    # rot90 is numpy's counter-clockwise rotation: the top-right corner goes to the top-left
    assert dihedral(g, 1)[0, 0] == g[0, -1]
    # anti-transpose maps (r, c) to (w-1-c, h-1-r)
    assert dihedral(g, 7)[0, 0] == g[-1, -1]
    assert len({dihedral(g, k).tobytes() + bytes(dihedral(g, k).shape) for k in range(8)}) == 8


def test_dihedral_inverse_identity_on_every_arc_grid() -> None:
    n = 0
    for stack in grids_by_shape().values():
        for k in range(8):
            np.testing.assert_array_equal(inverse_dihedral(dihedral(stack, k), k), stack)
        n += len(stack)
    assert n > 15000


def test_augmentation_invert_apply_identity_on_every_arc_grid() -> None:
    augs = random_augmentations(np.random.default_rng(0), 24)
    assert len({(a.dihedral, a.colors) for a in augs}) == 24
    for stack in grids_by_shape().values():
        for aug in augs:
            out = aug.apply(stack)
            np.testing.assert_array_equal(aug.invert(out), stack)
            # background stays background, other colours move as the permutation says
            np.testing.assert_array_equal(out == 0, dihedral(stack == 0, aug.dihedral))


def test_dihedral_index_matches_transform() -> None:
    g = np.arange(12).reshape(3, 4)
    for k in range(8):
        idx, shape = dihedral_index(3, 4, k)
        np.testing.assert_array_equal(g.ravel()[idx].reshape(shape), dihedral(g, k))


def test_augmentation_record_and_name() -> None:
    aug = Augmentation(3, (0, 4, 1, 7, 2, 3, 9, 8, 5, 6), (2, 5))
    assert aug.name == "t3_0417239856_o2x5"
    assert Augmentation.from_name(aug.name) == aug
    assert Augmentation.from_dict(aug.to_dict()) == aug
    assert Augmentation.from_name("t3_0417239856") == aug.without_offset()
    assert Augmentation.identity().is_identity and Augmentation.identity().name == "t0_0123456789"
    with pytest.raises(ValueError):
        Augmentation.from_name("t9_0123456789")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dihedral": 8},
        {"colors": (1, 0, 2, 3, 4, 5, 6, 7, 8, 9)},  # moves the background
        {"colors": (0, 1, 1, 3, 4, 5, 6, 7, 8, 9)},  # not a permutation
        {"colors": (0, 1, 2)},
        {"offset": (-1, 0)},
    ],
)
def test_augmentation_rejects_bad_records(kwargs) -> None:
    with pytest.raises(ValueError):
        Augmentation(**kwargs)


def test_colour_permutation_semantics_match_reference() -> None:
    # reference: mapping[grid] then dihedral; the name lists mapping[0..9]
    aug = Augmentation.from_name("t1_0987654321")
    g = np.array([[1, 0], [2, 3]])
    mapping = np.array([0, 9, 8, 7, 6, 5, 4, 3, 2, 1])
    np.testing.assert_array_equal(aug.apply(g), np.rot90(mapping[g], 1))
    # the reference evaluation's inverse: argsort(mapping)[inverse_dihedral(pred)]
    np.testing.assert_array_equal(aug.invert(aug.apply(g)), np.argsort(mapping)[np.rot90(np.rot90(mapping[g]), 3)])


def test_random_augmentations_distinct_and_identity_first() -> None:
    rng = np.random.default_rng(5)
    augs = random_augmentations(rng, 500)
    assert augs[0].is_identity
    assert len({(a.dihedral, a.colors) for a in augs}) == 500
    assert all(a.colors[0] == 0 for a in augs)
    assert not any(a.is_identity for a in random_augmentations(rng, 50, include_identity=False))
    c = random_colors(rng, 1000)
    assert (c[:, 0] == 0).all() and (np.sort(c, axis=1) == np.arange(10)).all()


def _task() -> ArcTask:
    return ArcTask(
        "abc",
        [ArcPair(np.array([[1, 2, 0]], np.uint8), np.array([[3], [4]], np.uint8))],
        [ArcPair(np.array([[5, 6], [7, 8]], np.uint8), None)],
    )


def test_apply_task_transforms_every_pair_the_same_way() -> None:
    task = _task()
    aug = Augmentation(6, (0, 2, 3, 4, 5, 6, 7, 8, 9, 1))
    out = aug.apply_task(task)
    assert out.id == "abc_t6_0234567891"
    for p, q in zip(task.pairs(), out.pairs()):
        np.testing.assert_array_equal(q.input, aug.apply(p.input))
        assert (q.output is None) == (p.output is None)
    back = aug.invert_task(out)
    for p, q in zip(task.pairs(), back.pairs()):
        np.testing.assert_array_equal(q.input, p.input)


def test_translation_encode_decode_is_exact_and_checked() -> None:
    task = _task()
    rng = np.random.default_rng(3)
    for _ in range(20):
        base = Augmentation(int(rng.integers(0, 8)), tuple(random_colors(rng, 1)[0].tolist()))
        off = random_offset(rng, [base.apply(g).shape for g in task.grids()])
        aug = Augmentation(base.dihedral, base.colors, off)
        assert aug.fits(task.shapes())
        for g in task.grids():
            seq = aug.encode(g)
            np.testing.assert_array_equal(aug.decode(seq), g)
            np.testing.assert_array_equal(decode_grid(seq, offset="auto"), aug.apply(g))
    with pytest.raises(ValueError, match="does not fit"):
        Augmentation(offset=(29, 0)).apply_task(task)
