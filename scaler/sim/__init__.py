"""Trace-driven simulator: replays real arrivals through a simulated queue, GPU
workers and pods, with KEDA and the HPA emulated, and the production Engine
deciding for Prewarm (see docs/decisions.md, "Simulator")."""
