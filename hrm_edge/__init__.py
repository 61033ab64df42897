"""hrm-edge: train, export, verify and run the Hierarchical Reasoning Model on edge devices."""

__version__ = "0.1.0"
