"""The model families by name: which class a config's `family` builds.

Kept free of a module-level torch import, like the package face that hands these names on, so
`hrm_edge.model.act` (the halting rules the ACT driver of runtime/base.py uses) still loads on a
machine without PyTorch, where ONNX Runtime and TensorRT run export bundles.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hrm_edge.config import HRMConfig
    from hrm_edge.model.base import HRMBase

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


__all__ = ["FAMILY_MODELS", "build_model", "model_class"]
