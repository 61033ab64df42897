"""ONNX Runtime I/O binding (the carry kept in OrtValues between segments) changes speed, never answers:
its outputs are bitwise those of the plain numpy path, for every halting mode and batch size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import random_tokens, tiny_model

from hrm_edge.errors import HrmEdgeError
from hrm_edge.export import export_model
from hrm_edge.runtime.onnxruntime import OrtRunner


@pytest.fixture(scope="module")
def step_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, Path]]:
    root = tmp_path_factory.mktemp("iob")
    return {name: (m, export_model(m, root / name, l3_batches=(1,), l4_puzzles=0).path)
            for name, m in ((n, tiny_model(n)) for n in ("tiny", "tiny-lite"))}


@pytest.mark.parametrize("name", ["tiny", "tiny-lite"])
@pytest.mark.parametrize("batch", [1, 3])
def test_io_binding_is_bitwise_the_plain_path(step_bundles: dict, name: str, batch: int) -> None:
    model, path = step_bundles[name]
    tokens, pe = random_tokens(model, batch, seed=batch)
    with OrtRunner.from_bundle(path, io_binding=False) as plain, OrtRunner.from_bundle(path) as bound:
        assert bound.io_binding

        def no_plain_run(feed: dict) -> dict:
            raise AssertionError("the I/O-binding runner fell back to session.run")

        bound._infer = no_plain_run  # type: ignore[method-assign]
        for halt in model.halt_modes:
            a, b = plain.run_act(tokens, pe, halt=halt), bound.run_act(tokens, pe, halt=halt)
            np.testing.assert_array_equal(a.steps, b.steps)
            for got, want in ((b.logits, a.logits), (b.q_halt, a.q_halt), (b.q_continue, a.q_continue)):
                assert got.dtype == want.dtype and np.array_equal(got.view(np.uint32), want.view(np.uint32))
        # every segment timed, none skipped: same number of segment calls on both paths
        assert len(bound.inference_times) == len(plain.inference_times) > len(model.halt_modes)


def test_carry_really_advances(step_bundles: dict) -> None:
    """A binding that fed segment 1's carry again (or never restarted it) would repeat segment 1's logits."""
    model, path = step_bundles["tiny"]
    tokens, pe = random_tokens(model, 2)
    with OrtRunner.from_bundle(path) as r:
        seen = []
        session = r.step_session(_first_feed(r, tokens, pe))
        for _ in range(3):
            session.run()
            seen.append(session.logits(np.arange(2)))
            session.advance()
        assert not np.array_equal(seen[0], seen[1]) and not np.array_equal(seen[1], seen[2])


def test_bad_opt_level_is_one_error(step_bundles: dict) -> None:
    with pytest.raises(HrmEdgeError, match="optimisation level"):
        OrtRunner.from_bundle(step_bundles["tiny"][1], opt_level="fast")


def _first_feed(r: OrtRunner, tokens: np.ndarray, pe: np.ndarray | None) -> dict[str, np.ndarray]:
    b, s = tokens.shape[0], r.spec
    carry = np.zeros((b, s.carry_len, s.hidden_size), np.float32)
    feed = {"tokens": tokens.astype(np.int32), "z_H": carry, "z_L": carry.copy(), "halted": np.ones(b, bool)}
    if pe is not None:
        feed["puzzle_emb"] = pe.astype(np.float32)
    return feed
