"""HRM model families behind one interface (see base.py).

The families are imported lazily (PEP 562), so `hrm_edge.model.act` (the halting rules the ACT
driver of runtime/base.py uses) loads on a machine without PyTorch: ONNX Runtime and TensorRT run
export bundles there.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hrm_edge.config import HRMConfig
    from hrm_edge.model.base import HRMBase
    from hrm_edge.model.hrm import HRMActV1
    from hrm_edge.model.lite import HRMLite

_LAZY = {"HRMBase": "hrm_edge.model.base", "HRMActV1": "hrm_edge.model.hrm", "HRMLite": "hrm_edge.model.lite"}


def build_model(cfg: HRMConfig, seed: int | None = None) -> HRMBase:
    """A freshly initialised model of the config's family (deterministic when `seed` is given)."""
    import torch

    from hrm_edge.config import ActV1Config, LiteConfig
    from hrm_edge.model.hrm import HRMActV1
    from hrm_edge.model.lite import HRMLite

    if seed is not None:
        torch.manual_seed(seed)
    if isinstance(cfg, ActV1Config):
        return HRMActV1(cfg)
    if isinstance(cfg, LiteConfig):
        return HRMLite(cfg)
    raise TypeError(f"not an HRM config: {type(cfg).__name__}")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hrm_edge.model' has no attribute {name!r}")


__all__ = ["build_model", "HRMBase", "HRMActV1", "HRMLite"]
