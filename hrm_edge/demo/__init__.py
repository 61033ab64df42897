"""`hrm-edge demo`: the model shipped in the package (asset.py) run end to end (run.py)."""
