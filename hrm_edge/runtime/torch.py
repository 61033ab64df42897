"""PyTorch runner: the reference every other runtime is compared against.

It runs the model's own `step` (the exact function the `step` ONNX graph is exported from) and
feeds it through the shared ACT driver, so its halting is the same code path as ONNX Runtime's
and TensorRT's.
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
    _dtype: torch.dtype = field(default=torch.float32, repr=False)

    @classmethod
    def from_model(cls, model: Any, device: str = "cpu") -> TorchRunner:
        return cls(spec=spec_from_config(model.config), model=model, device=device)

    @classmethod
    def from_checkpoint(cls, path: str, device: str = "cpu") -> TorchRunner:
        from hrm_edge.model.checkpoint import load_checkpoint

        return cls.from_model(load_checkpoint(path).model, device=device)

    def activate(self) -> None:
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            from hrm_edge.errors import MissingDependencyError

            raise MissingDependencyError("torch runner asked for CUDA but torch.cuda.is_available() is False")
        self.model.to(self.device).eval()

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
