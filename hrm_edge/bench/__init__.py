"""Runtime measurements: harness.py (timing, latency percentiles, logit deltas) shared by `solve`,
`compare` and `bench`; compare.py (every runtime vs PyTorch on the same plan, table + JSON + PNG).
"""
