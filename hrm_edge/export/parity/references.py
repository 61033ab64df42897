"""The PyTorch references L3 and L4 compare against: fp32 (runtime/torch.py) and this float64 copy, whose
gap to fp32 is the noise floor the tolerances are set by.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from hrm_edge.runtime.base import TensorMeta
from hrm_edge.runtime.torch import TorchRunner


@dataclass
class TorchF64Runner(TorchRunner):
    """The same model in float64 (norms stay fp32 where the model says so): the fp32 noise floor."""

    name: str = "torch-f64"

    def activate(self) -> None:
        self.model = copy.deepcopy(self.model).double().eval()

    def input_metadata(self) -> dict[str, TensorMeta]:
        meta = super().input_metadata()
        return {k: TensorMeta(np.dtype(np.float64), m.shape) if m.dtype == np.float32 else m for k, m in meta.items()}

    @torch.inference_mode()
    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feed.items()}
        logits, q_halt, q_cont, z_H, z_L = self.model.step(t["tokens"], t.get("puzzle_emb"), t["z_H"], t["z_L"],
                                                           t["halted"])
        out = {"logits": logits, "q_halt": q_halt, "q_continue": q_cont, "z_H_next": z_H, "z_L_next": z_L}
        return {k: v.double().numpy() for k, v in out.items()}


def as_float64(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feed.items()}
