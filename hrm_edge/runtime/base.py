"""The Runner protocol and the one ACT driver every runtime shares.

A runner (Polygraphy style) is a context manager: `activate` allocates a session / buffers,
`deactivate` frees them; `infer(feed)` checks names, dtypes and shapes against the model's input
metadata, runs, and records its own time. `run_act` is the ACT driver: for a `step` artifact it
loops segments on the host (reset at the first segment, freeze samples as they halt, stop when all
have); for `unrolled` / `loop` artifacts the graph does that and one call suffices. PyTorch, ONNX
Runtime and TensorRT all go through this same code, so they halt by the same rule.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hrm_edge.errors import HrmEdgeError
from hrm_edge.model.act import HaltTracker

# Names of the step graph's inputs and outputs (also used by unrolled/loop graphs where they apply).
STEP_INPUTS = ("tokens", "puzzle_emb", "z_H", "z_L", "halted")
STEP_OUTPUTS = ("logits", "q_halt", "q_continue", "z_H_next", "z_L_next")
ACT_OUTPUTS = ("logits", "q_halt", "q_continue", "steps")


@dataclass(frozen=True)
class ModelSpec:
    """What the driver must know about a model, read from a config or an export manifest."""

    family: str
    vocab_size: int
    seq_len: int
    hidden_size: int
    puzzle_emb_len: int
    puzzle_emb_ndim: int
    max_steps: int
    min_halt_steps: int
    halt_modes: tuple[str, ...]
    halt_threshold: float | None = None
    adaptive_rule: str = "q_halt>q_continue"  # manifests written before TRM lack it: ACT v1 / lite's rule

    @property
    def carry_len(self) -> int:
        return self.seq_len + self.puzzle_emb_len

    @property
    def canvas(self) -> int:
        """Side of the square token canvas (30 for ARC)."""
        side = math.isqrt(self.seq_len)
        if side * side != self.seq_len:
            raise HrmEdgeError(f"model sequence length {self.seq_len} is not a square canvas")
        return side

    def check_halt(self, halt: str) -> None:
        """One clear error when this family has no such halting mode (lite alone has batch-mean)."""
        if halt not in self.halt_modes:
            raise HrmEdgeError(f"halt mode {halt!r} is not available for the {self.family} family "
                               f"(choose {', '.join(self.halt_modes)})")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["halt_modes"] = list(self.halt_modes)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        d["halt_modes"] = tuple(d["halt_modes"])
        return cls(**d)


def spec_from_config(cfg: Any) -> ModelSpec:
    from hrm_edge.model import model_class

    model_cls = model_class(cfg.family)
    return ModelSpec(
        family=cfg.family, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len, hidden_size=cfg.hidden_size,
        puzzle_emb_len=cfg.puzzle_emb_len, puzzle_emb_ndim=cfg.puzzle_emb_ndim, max_steps=cfg.max_steps,
        min_halt_steps=model_cls.min_halt_steps, halt_modes=model_cls.halt_modes,
        halt_threshold=getattr(cfg, "halt_threshold", None), adaptive_rule=model_cls.adaptive_rule,
    )


@dataclass
class ActResult:
    """Outputs of a full ACT run, each sample taken at the segment where it halted."""

    logits: np.ndarray  # [B, S, V] float32
    q_halt: np.ndarray  # [B]
    q_continue: np.ndarray  # [B]
    steps: np.ndarray  # [B] int32, segments run before halting (1..max_steps)

    @property
    def predictions(self) -> np.ndarray:
        return self.logits.argmax(-1)


@dataclass
class TensorMeta:
    dtype: np.dtype
    shape: tuple[int | str | None, ...]  # str / None marks a dynamic dimension


class StepSession:
    """One batch of a `step` graph, segment after segment: `run` a segment and get its q values,
    fetch the `logits` of chosen samples, `advance` the carry, and (continuous batching,
    runtime/scheduler.py) `restart` chosen rows with new puzzles. The ACT driver and the scheduler only
    talk to this, so a runtime may keep the carry wherever it likes (TensorRT keeps it on the device).
    The session owns its feed arrays: `restart` writes into them."""

    def __init__(self, runner: Runner, feed: dict[str, np.ndarray]) -> None:
        self.runner, self.feed = runner, feed
        self.out: dict[str, np.ndarray] = {}

    def run(self) -> tuple[np.ndarray, np.ndarray]:
        self.out = self.runner.infer(self.feed)
        return self.out["q_halt"], self.out["q_continue"]

    def logits(self, rows: np.ndarray) -> np.ndarray:
        return self.out["logits"][rows]

    def advance(self) -> None:
        self.feed["z_H"], self.feed["z_L"] = self.out["z_H_next"], self.out["z_L_next"]
        self.feed["halted"] = np.zeros_like(self.feed["halted"])

    def restart(self, rows: np.ndarray, tokens: np.ndarray, puzzle_emb: np.ndarray | None) -> None:
        """Before the next `run`: `rows` hold new puzzles and start from the initial carry (their
        `halted` input is set, which is how the step graph restarts a row); other rows continue."""
        self.feed["tokens"][rows] = tokens
        if "puzzle_emb" in self.feed and puzzle_emb is not None:
            self.feed["puzzle_emb"][rows] = puzzle_emb
        self.feed["halted"][rows] = True


@dataclass
class Runner(ABC):
    """Base of all runtimes. Subclasses implement activate/deactivate/_infer/input_metadata."""

    spec: ModelSpec
    act_mode: str = "step"  # "step" | "unrolled" | "loop"
    baked_halt: str | None = None  # halting mode compiled into an unrolled/loop graph
    name: str = "runner"
    inference_times: list[float] = field(default_factory=list)
    is_active: bool = False

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Runner:
        self.activate()
        self.is_active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()
        self.is_active = False

    @abstractmethod
    def activate(self) -> None: ...

    def deactivate(self) -> None:
        return None

    @abstractmethod
    def input_metadata(self) -> dict[str, TensorMeta]: ...

    @abstractmethod
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    # -- checked, timed inference --------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once after checking the feed against the model's inputs; records the time taken."""
        self.check_feed(feed)
        t0 = time.perf_counter()
        out = self._infer(feed)
        self.inference_times.append(time.perf_counter() - t0)
        return out

    def check_feed(self, feed: dict[str, np.ndarray]) -> None:
        """Names, dtypes and static dims of `feed` against the model's inputs (and that the runner is active)."""
        if not self.is_active:
            raise HrmEdgeError(f"{self.name}: runner used outside its `with` block (not activated)")
        meta = self.input_metadata()
        missing, extra = set(meta) - set(feed), set(feed) - set(meta)
        if missing or extra:
            raise HrmEdgeError(f"{self.name}: feed names {sorted(feed)} do not match model inputs {sorted(meta)}")
        for k, m in meta.items():
            arr = feed[k]
            if arr.dtype != m.dtype:
                raise HrmEdgeError(f"{self.name}: input {k!r} has dtype {arr.dtype}, model expects {m.dtype}")
            if len(arr.shape) != len(m.shape) or any(
                isinstance(d, int) and d != a for d, a in zip(m.shape, arr.shape)
            ):
                raise HrmEdgeError(f"{self.name}: input {k!r} has shape {arr.shape}, model expects {m.shape}")

    # -- the ACT driver --------------------------------------------------------------------------
    def run_act(self, tokens: np.ndarray, puzzle_emb: np.ndarray | None = None, halt: str = "max") -> ActResult:
        """Full ACT inference on a batch; identical halting on every runtime."""
        spec = self.spec
        spec.check_halt(halt)
        feed = self.act_feed(tokens, puzzle_emb)
        b = feed["tokens"].shape[0]
        if self.act_mode != "step":
            if self.baked_halt is not None and halt != self.baked_halt:
                raise HrmEdgeError(f"{self.name}: this {self.act_mode} graph was exported with halt "
                                   f"{self.baked_halt!r}; re-export for {halt!r} or use a step bundle")
            out = self.infer(feed)
            return ActResult(out["logits"].astype(np.float32, copy=False), out["q_halt"], out["q_continue"],
                             out["steps"].astype(np.int32))
        tracker = HaltTracker.for_spec(b, halt, spec)
        session = self.step_session(self.step_feed(feed))
        logits: np.ndarray | None = None
        q_halt, q_cont = np.zeros(b, np.float32), np.zeros(b, np.float32)
        for n in range(1, spec.max_steps + 1):
            qh, qc = session.run()
            live = tracker.update(n, qh, qc)
            q_halt[live], q_cont[live] = qh[live], qc[live]
            rows = np.flatnonzero(live & tracker.done)  # halted at this segment: their answer is final
            if rows.size:
                part = session.logits(rows)
                if logits is None:
                    logits = np.zeros((b,) + part.shape[1:], np.float32)
                logits[rows] = part
            if tracker.done.all():
                break
            session.advance()
        assert logits is not None
        return ActResult(logits, q_halt, q_cont, tracker.steps)

    def act_feed(self, tokens: np.ndarray, puzzle_emb: np.ndarray | None) -> dict[str, np.ndarray]:
        """The model inputs of a batch in the graph's dtypes (zero puzzle vectors where none are given)."""
        tokens = np.ascontiguousarray(tokens, dtype=np.int32)
        meta = self.input_metadata()
        feed: dict[str, np.ndarray] = {"tokens": tokens}
        if "puzzle_emb" in meta:
            if puzzle_emb is None:
                puzzle_emb = np.zeros((tokens.shape[0], self.spec.puzzle_emb_ndim), np.float32)
            feed["puzzle_emb"] = np.ascontiguousarray(puzzle_emb, dtype=meta["puzzle_emb"].dtype)
        return feed

    def step_feed(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`feed` plus a step graph's first-segment carry: zero z_H / z_L and every row `halted` (restart)."""
        b = feed["tokens"].shape[0]
        carry_dtype = self.input_metadata()["z_H"].dtype
        z_shape = (b, self.spec.carry_len, self.spec.hidden_size)
        return dict(feed, z_H=np.zeros(z_shape, carry_dtype), z_L=np.zeros(z_shape, carry_dtype),
                    halted=np.ones(b, dtype=bool))

    def step_session(self, feed: dict[str, np.ndarray]) -> StepSession:
        """How one batch's segments run; the default keeps the carry on the host (TensorRT overrides it)."""
        return StepSession(self, feed)

    def latency_summary(self) -> dict[str, float]:
        t = np.asarray(self.inference_times) * 1000.0
        if t.size == 0:
            return {}
        return {"calls": int(t.size), "mean_ms": float(t.mean()), "p50_ms": float(np.percentile(t, 50)),
                "p90_ms": float(np.percentile(t, 90)), "p99_ms": float(np.percentile(t, 99))}
