"""HRM model families behind one interface (see base.py); `build_model` makes one from its config.

The family classes live in their own modules (hrm.py, trm.py, lite.py), imported by name when a model
is built (families.py), so `hrm_edge.model.act` (the halting rules the ACT driver of runtime/base.py
uses) loads on a machine without PyTorch: ONNX Runtime and TensorRT run export bundles there.
"""

from __future__ import annotations

from hrm_edge.model.families import FAMILY_MODELS, build_model, model_class

__all__ = ["build_model", "model_class", "FAMILY_MODELS"]
