"""Voting, augmentation inversion, decisions and the submission format, on hand-made cases.

Every case here has a known answer: either a grid we planted in the model's "output" (as the
augmented frame would hold it), or the exact inverse of a transform we applied.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hrm_edge.data.arc import ArcPair, ArcTask, load_tasks
from hrm_edge.data.augment import Augmentation, random_colors
from hrm_edge.data.identifiers import parse_identifiers
from hrm_edge.data.tokens import decode_grid_checked, encode_batch, encode_grid
from hrm_edge.runtime.batches import RunRecord
from hrm_edge.solve.runners import PuzzleTable
from hrm_edge.solve.solver import (
    SolveOptions,
    choose_augmentations,
    decide,
    identifier_name,
    make_batches,
    plan_tasks,
    summarize_scores,
)
from hrm_edge.solve.submission import build_submission, score_submission, validate_submission
from hrm_edge.solve.vote import Candidate, attempts_from, vote


def g(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# voting
# --------------------------------------------------------------------------------------------------
def test_vote_ranks_by_count_then_mean_q_halt_then_first_seen() -> None:
    a, b, c, d = g([[1]]), g([[2]]), g([[3, 3]]), g([[3], [3]])  # c and d: same cells, different shapes
    cands = [Candidate(b, 0.0), Candidate(a, -1.0), Candidate(a, -3.0), Candidate(c, 5.0), Candidate(d, 1.0),
             Candidate(b, 2.0), Candidate(c, 5.0), Candidate(d, 1.0)]
    ranked = vote(cands)
    # a: 2 votes mean -2; b: 2 votes mean 1; c: 2 votes mean 5; d: 2 votes mean 1 (tie with b, b first seen)
    assert [r.count for r in ranked] == [2, 2, 2, 2]
    assert [r.grid.tobytes() + bytes(r.grid.shape) for r in ranked] == \
        [x.tobytes() + bytes(x.shape) for x in (c, b, d, a)]
    assert ranked[0].mean_q_halt == pytest.approx(5.0)
    more = vote(cands + [Candidate(a, -10.0)])
    assert np.array_equal(more[0].grid, a) and more[0].count == 3  # count beats confidence


def test_attempts_pad_with_best_or_fallback() -> None:
    ranked = vote([Candidate(g([[4]]), 0.0)])
    atts = attempts_from(ranked, 2)
    assert len(atts) == 2 and all(np.array_equal(x, g([[4]])) for x in atts)
    empty = attempts_from([], 2)
    assert len(empty) == 2 and empty[0].shape == (1, 1)


# --------------------------------------------------------------------------------------------------
# inversion: every ARC-AGI-1 grid shape, all 8 dihedral transforms x colour permutations
# --------------------------------------------------------------------------------------------------
def _arc_agi_1_shapes() -> list[tuple[int, int]]:
    shapes: set[tuple[int, int]] = set()
    for split in ("arc-agi-1/training", "arc-agi-1/evaluation"):
        for t in load_tasks(split).tasks:
            shapes.update(t.shapes())
    return sorted(shapes)


def test_every_augmentation_inverts_exactly_for_every_arc_agi_1_shape() -> None:
    """The solver's path for one prediction: apply -> encode -> (model) -> decode -> invert."""
    shapes = _arc_agi_1_shapes()
    assert len(shapes) > 300  # sanity: the set really was read (it has ~650 distinct shapes)
    rng = np.random.default_rng(0)
    perms = [tuple(range(10))] + [tuple(int(c) for c in p) for p in random_colors(rng, 3)]
    checked = 0
    for h, w in shapes:
        grid = rng.integers(0, 10, size=(h, w)).astype(np.uint8)
        augs = [Augmentation(k, c) for k in range(8) for c in perms]
        seqs = encode_batch([a.apply(grid) for a in augs], 30)
        for aug, seq in zip(augs, seqs):
            dec = decode_grid_checked(seq, 30, strict=True)
            assert dec.grid is not None, (h, w, aug.name, dec.reason)
            back = aug.invert(dec.grid)
            assert back.shape == grid.shape and np.array_equal(back, grid), (h, w, aug.name)
            checked += 1
    assert checked == len(shapes) * 32


# --------------------------------------------------------------------------------------------------
# decide(): planted predictions with known answers
# --------------------------------------------------------------------------------------------------
def _task() -> ArcTask:
    inp = g([[1, 2, 0], [0, 3, 0]])  # 2x3: transposes change the shape, so a wrong inverse shows
    sol = g([[5, 5], [6, 0], [7, 7]])
    train = [ArcPair(g([[1]]), g([[2]]))]
    return ArcTask("handmade", train, [ArcPair(inp, sol), ArcPair(g([[4]]), None)])


def _record(plan, tokens_per_job: dict[int, np.ndarray], q: dict[int, float]) -> RunRecord:
    rec = RunRecord()
    for b in plan.batches:
        rec.predictions.append(np.stack([tokens_per_job[j] for j in b]).astype(np.uint8))
        rec.q_halt.append(np.array([q.get(j, 0.0) for j in b], np.float32))
        rec.steps.append(np.ones(len(b), np.int32))
        rec.batch_seconds.append(0.001)
        rec.batch_sizes.append(len(b))
    return rec


def test_decide_inverts_votes_and_scores_planted_predictions() -> None:
    task = _task()
    opts = SolveOptions(augment=8, attempts=2, batch=3, seed=1)
    plan = plan_tasks([task], opts, canvas=30)
    assert len(plan.jobs) == 16 and [len(b) for b in plan.batches] == [3] * 5 + [1]
    sol = task.test[0].output
    wrong = g([[9, 9], [9, 9], [9, 9]])
    toks: dict[int, np.ndarray] = {}
    q: dict[int, float] = {}
    test0 = [j for j, job in enumerate(plan.jobs) if job.test_index == 0]
    for n, j in enumerate(test0):
        aug = plan.jobs[j].aug
        if n < 3:  # three copies answer the solution, in each copy's own augmented frame
            toks[j] = encode_grid(aug.apply(sol), 30)
            q[j] = -1.0
        elif n < 6:  # three copies answer the same wrong grid, more confidently: a tie broken by q_halt
            toks[j] = encode_grid(aug.apply(wrong), 30)
            q[j] = 3.0
        elif n == 6:  # garbage: undecodable, counted, not raised on
            toks[j] = np.full(900, 1, np.uint8)  # all EOS
        else:
            toks[j] = np.zeros(900, np.uint8)  # all PAD: undecodable too
    for j, job in enumerate(plan.jobs):
        if job.test_index == 1:
            toks[j] = encode_grid(job.aug.apply(g([[4, 4]])), 30)
    dec = decide(plan, _record(plan, toks, q))
    a0, a1 = dec.answers
    assert a0.n_candidates == 8 and a0.n_undecodable == 2 and dec.undecodable == 2
    assert [r.count for r in a0.ranked] == [3, 3]
    assert np.array_equal(a0.attempts[0], wrong) and np.array_equal(a0.attempts[1], sol)
    assert a0.correct == [False, True]
    assert a1.correct is None and np.array_equal(a1.attempts[0], g([[4, 4]]))
    # non-PAD token accuracy over the 8 copies of test 0 (test 1 has no known solution): each label has
    # 6 colour cells + 5 EOS cells (3 row ends + the EOS row under a 2-wide grid, or 2 + 3 transposed);
    # right copies hit 11, wrong copies and the all-EOS one only the 5 EOS cells, the all-PAD one none
    assert dec.token_accuracy == pytest.approx((3 * 11 + 3 * 5 + 5 + 0) / (8 * 11))
    scores = dec.scores()
    assert scores[0].pass1 == 0.0 and scores[0].pass2 == 1.0 and scores[0].n_known == 1
    s = summarize_scores(scores)
    assert s["pass@1"] == 0.0 and s["pass@2"] == 1.0
    sub = dec.submission()
    assert validate_submission(sub, [task]) == []
    assert sub["handmade"][0]["attempt_2"] == sol.tolist()
    assert json.loads(json.dumps(sub)) == sub
    assert score_submission(sub, [task])["pass@2"] == 1.0


def test_plan_uses_known_identifiers_and_reports_blank_ones() -> None:
    task = _task()
    known = Augmentation(6, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    names = ["<blank>", "other", "handmade", identifier_name("handmade", known)]
    table = PuzzleTable(ndim=4, num_rows=4, names=parse_identifiers(names),
                        rows=lambda ids: np.stack([np.full(4, float(i)) for i in ids]))
    augs = choose_augmentations(task, 3, seed=0, table=table)
    assert augs[0].is_identity and augs[1] == known and len(set(augs)) == 3
    plan = plan_tasks([task], SolveOptions(augment=3, batch=4), 30, table)
    bs = make_batches(plan, table)
    assert bs.n_blank == 2  # the random third augmentation, for each of the two test inputs
    rows = np.concatenate([b.puzzle_emb[:, 0] for b in bs.batches])
    order = [i for b in plan.batches for i in b]
    want = [2.0 if plan.jobs[j].aug.is_identity else 3.0 if plan.jobs[j].aug == known else 0.0 for j in order]
    assert rows.tolist() == want
    # the same task always gets the same augmentations (compare relies on it), whatever it is solved with
    other = ArcTask("zzz", task.train, task.test)
    plan2 = plan_tasks([other, task], SolveOptions(augment=3, batch=4), 30, table)
    assert [j.aug for j in plan2.jobs if j.task_id == "handmade"] == [j.aug for j in plan.jobs]


def test_submission_format_and_validation() -> None:
    task = _task()
    plan = plan_tasks([task], SolveOptions(augment=1, batch=8), 30)
    toks = {j: encode_grid(job.aug.apply(g([[1]])), 30) for j, job in enumerate(plan.jobs)}
    sub = build_submission(decide(plan, _record(plan, toks, {})).answers)
    assert list(sub) == ["handmade"] and len(sub["handmade"]) == 2
    assert set(sub["handmade"][0]) == {"attempt_1", "attempt_2"}
    assert validate_submission(sub, [task]) == []
    assert validate_submission({"handmade": [{"attempt_1": [[1, 2], [3]]}]}, [task])  # ragged, missing, count
    assert validate_submission({"handmade": [{"attempt_1": [[10]], "attempt_2": [[1]]}] * 2})  # colour 10


def test_known_translated_augmentation_keeps_its_offset_and_inverts() -> None:
    """An identifier trained with a canvas offset (`..._o2x3`) is used at that offset, and decoded there."""
    task = _task()
    shifted = Augmentation(1, tuple(range(10)), (2, 3))
    table = PuzzleTable(ndim=2, num_rows=3, names=parse_identifiers(["<blank>", "handmade",
                                                                     identifier_name("handmade", shifted)]),
                        rows=lambda ids: np.zeros((len(ids), 2), np.float32))
    plan = plan_tasks([task], SolveOptions(augment=2, batch=8), 30, table)
    job = [j for j in plan.jobs if j.test_index == 0 and not j.aug.is_identity][0]
    assert job.aug == shifted and make_batches(plan, table).n_blank == 0
    board = job.tokens.reshape(30, 30)
    assert not board[:2].any() and not board[:, :3].any() and board[2, 3] >= 2  # grid starts at (2, 3)
    sol = task.test[0].output
    toks = {i: encode_grid(j.aug.apply(sol), 30, offset=j.aug.offset) for i, j in enumerate(plan.jobs)}
    dec = decide(plan, _record(plan, toks, {}))
    assert dec.undecodable == 0 and dec.answers[0].correct == [True, True]
    assert dec.answers[0].ranked[0].count == 2  # both copies, inverted, agree
