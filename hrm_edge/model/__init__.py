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
    from hrm_edge.model.trm import TRM

_LAZY = {"HRMBase": "hrm_edge.model.base", "HRMActV1": "hrm_edge.model.hrm", "HRMLite": "hrm_edge.model.lite",
         "TRM": "hrm_edge.model.trm"}
#: family name -> (module, class) of its model; configs name their family (config.py FAMILIES)
FAMILY_MODELS = {"act-v1": ("hrm_edge.model.hrm", "HRMActV1"), "trm": ("hrm_edge.model.trm", "TRM"),
                 "lite": ("hrm_edge.model.lite", "HRMLite")}


def model_class(family: str) -> type[HRMBase]:
    """The model class of a family, so callers that need class attributes (halting) never switch on names."""
    if family not in FAMILY_MODELS:
        raise TypeError(f"unknown model family {family!r}; expected one of {sorted(FAMILY_MODELS)}")
    module, name = FAMILY_MODELS[family]
    return getattr(importlib.import_module(module), name)


def build_model(cfg: HRMConfig, seed: int | None = None) -> HRMBase:
    """A freshly initialised model of the config's family (deterministic when `seed` is given)."""
    import torch

    family = getattr(cfg, "family", None)
    if not isinstance(family, str) or family not in FAMILY_MODELS:
        raise TypeError(f"not an HRM config: {type(cfg).__name__}")
    cls = model_class(family)
    if seed is not None:
        torch.manual_seed(seed)
    return cls(cfg)  # type: ignore[call-arg]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hrm_edge.model' has no attribute {name!r}")


__all__ = ["build_model", "model_class", "FAMILY_MODELS", "HRMBase", "HRMActV1", "HRMLite", "TRM"]
