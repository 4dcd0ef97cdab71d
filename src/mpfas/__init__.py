"""HFN + Meta Pattern face anti-spoofing: a staged, reproducible pipeline."""

__version__ = "0.1.0"
