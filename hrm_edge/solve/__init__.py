"""Solving ARC tasks: augment -> infer -> decode -> invert -> vote -> attempts (solver.py).

runners.py opens a runtime by name (torch / onnxruntime / tensorrt) with its puzzle table;
vote.py ranks candidate grids and answers.py holds what was decided per test input; submission.py
writes and checks the ARC Prize format; render.py draws grids in the terminal and as PNGs; run.py is
`hrm-edge solve` as one call; compare.py runs one plan on several runtimes against PyTorch.
"""
