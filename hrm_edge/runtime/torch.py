"""PyTorch runner: the reference every other runtime is compared against.

It runs the model's own `step` (the exact function the `step` ONNX graph is exported from) and
feeds it through the shared ACT driver, so its halting is the same code path as ONNX Runtime's
and TensorRT's.

`dtype="bfloat16"` is the references' own bf16 forward (`ActV1Base.set_forward_dtype`), for checkpoints
trained in bf16 (the references' default): the carry travels as fp32 numpy between segments, which holds
bf16 values exactly, so the run equals the references' bf16 evaluation. `autocast` is something else:
torch's mixed precision (matmuls in bf16, the rest fp32), a speed variant for `bench`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hrm_edge.runtime.base import Runner, TensorMeta, spec_from_config


@dataclass
class TorchRunner(Runner):
    model: Any = None
    device: str = "cpu"
    name: str = "torch"
    autocast: str | None = None  # "bfloat16": matmuls and attention in bf16 (CPUs with bf16 units); norms stay fp32
    dtype: str | None = None  # forward dtype while active: "float32", "bfloat16" (the references'); None: the model's
    _dtype: torch.dtype = field(default=torch.float32, repr=False)
    _restore_dtype: str | None = field(default=None, repr=False)

    @classmethod
    def from_model(cls, model: Any, device: str = "cpu", dtype: str | None = None) -> TorchRunner:
        return cls(spec=spec_from_config(model.config), model=model, device=device, dtype=dtype)

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu", dtype: str | None = None) -> TorchRunner:
        from hrm_edge.model.checkpoint import load_checkpoint

        return cls.from_model(load_checkpoint(path).model, device=device, dtype=dtype)

    @property
    def forward_dtype(self) -> str:
        """The dtype this runner computes in (what `--dtype`-style reports name)."""
        return self.dtype or getattr(self.model.config, "forward_dtype", "float32")

    def activate(self) -> None:
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            from hrm_edge.errors import MissingDependencyError

            raise MissingDependencyError("torch runner asked for CUDA but torch.cuda.is_available() is False")
        own = getattr(self.model.config, "forward_dtype", "float32")
        if self.dtype is not None and self.dtype != own:
            if not hasattr(self.model, "set_forward_dtype"):
                from hrm_edge.errors import HrmEdgeError

                raise HrmEdgeError(f"the {self.model.config.family} family computes in float32 only; "
                                   f"dtype {self.dtype!r} is for act-v1 and trm")
            self._restore_dtype = own
            self.model.set_forward_dtype(self.dtype)
        self.model.to(self.device).eval()

    def deactivate(self) -> None:
        """The model computes in its own dtype again (a runner borrowed a training model, e.g. arc_eval)."""
        if self._restore_dtype is not None:
            self.model.set_forward_dtype(self._restore_dtype)
            self._restore_dtype = None

    def input_metadata(self) -> dict[str, TensorMeta]:
        s = self.spec
        meta = {"tokens": TensorMeta(np.dtype(np.int32), ("batch", s.seq_len))}
        if s.puzzle_emb_ndim > 0:
            meta["puzzle_emb"] = TensorMeta(np.dtype(np.float32), ("batch", s.puzzle_emb_ndim))
        carry = ("batch", s.carry_len, s.hidden_size)
        meta["z_H"] = TensorMeta(np.dtype(np.float32), carry)
        meta["z_L"] = TensorMeta(np.dtype(np.float32), carry)
        meta["halted"] = TensorMeta(np.dtype(bool), ("batch",))
        return meta

    @torch.inference_mode()
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in feed.items()}
        dev = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.autocast(dev, dtype=getattr(torch, self.autocast or "float32"), enabled=self.autocast is not None):
            logits, q_halt, q_cont, z_H, z_L = self.model.step(t["tokens"], t.get("puzzle_emb"), t["z_H"], t["z_L"],
                                                               t["halted"])
        out = {"logits": logits, "q_halt": q_halt, "q_continue": q_cont, "z_H_next": z_H, "z_L_next": z_L}
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
        return {k: v.float().cpu().numpy() for k, v in out.items()}

    def puzzle_vectors(self, puzzle_ids: np.ndarray) -> np.ndarray | None:
        """Rows of the model's own puzzle-embedding table for these identifiers."""
        with torch.no_grad():
            v = self.model.puzzle_vectors(torch.as_tensor(puzzle_ids, dtype=torch.long, device=self.device))
        return None if v is None else v.float().cpu().numpy()
