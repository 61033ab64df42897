"""ONNX graph tools shared by export and the runtimes, below both (torch-free: the ORT runner imports them).

links.py (who produces and reads each tensor, pruning), ort_fusions.py (the ORT-only fused kernels applied
at load), qdq_uint8.py (int8 Q/DQ activations as uint8 for ORT's u8 x s8 kernels). Import the modules
themselves (`from hrm_edge.graph.links import prune`); this face hands nothing on.
"""
