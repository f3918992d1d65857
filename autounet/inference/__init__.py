"""Inference: Gaussian-weighted sliding windows, test-time mirroring, back to original geometry."""
