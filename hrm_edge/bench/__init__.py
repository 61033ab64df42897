"""Measuring runtimes, never running them: timing.py (latency percentiles from a run's batch times),
inputs.py (random grids to time on), compare.py (the compare report with timings: table, markdown, PNG),
peaks.py, flops.py, suite.py and report.py (the variant suite against the machine's matmul peaks).
Running puzzles is runtime/batches.py's; solving them on several runtimes is solve/compare.py's.
"""
