"""The test kit's own premise (conftest.tiny_model): adaptive halting differs between samples, so the
halting paths of export, parity and runners are exercised rather than trivially equal."""

from __future__ import annotations

from conftest import random_tokens, tiny_model

from hrm_edge.runtime.torch import TorchRunner


def test_tiny_models_halt_non_trivially() -> None:
    for name in ("tiny", "tiny-lite", "tiny-trm"):
        m = tiny_model(name)
        tokens, pe = random_tokens(m, 8)
        with TorchRunner.from_model(m) as r:
            steps = r.run_act(tokens, pe, halt="adaptive").steps
        assert len(set(steps.tolist())) > 1, (name, steps)
