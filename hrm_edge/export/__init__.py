"""Export: checkpoint -> parity-checked bundle (model.onnx + puzzle_emb.npy + manifest.json).

    from hrm_edge.export import export_checkpoint, verify_bundle
    result = export_checkpoint("hrm_arc_best.pt", act="step")     # raises ParityError, writes nothing, on failure
    report = verify_bundle(result.path)                             # re-run the ladder on demand

This face only hands on the pipeline's names (pipeline.py); the rooms of the package: onnx.py (trace and
assemble the ACT graph), fusable.py, precision.py and calib.py (fp16 / int8 variants), bundle.py (the
staged folder), trt_ops.py (TensorRT op-support lint), parity/ (the L1-L4 ladder).
"""

from hrm_edge.export.pipeline import (
    DEFAULT_CALIB_PUZZLES,
    DEFAULT_CALIB_SOURCE,
    DEFAULT_L3_BATCHES,
    DEFAULT_L4_PUZZLES,
    ExportResult,
    QdqOptions,
    default_out,
    default_target,
    export_checkpoint,
    export_model,
    precision_report,
    summary_row,
    verify_bundle,
)

__all__ = ["export_model", "export_checkpoint", "verify_bundle", "ExportResult", "default_out", "default_target",
           "summary_row", "precision_report", "QdqOptions", "DEFAULT_CALIB_SOURCE", "DEFAULT_CALIB_PUZZLES",
           "DEFAULT_L3_BATCHES", "DEFAULT_L4_PUZZLES"]
