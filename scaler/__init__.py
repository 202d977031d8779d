"""Prewarm: a KEDA external scaler for GPU inference workloads."""

__version__ = "0.1.0"
